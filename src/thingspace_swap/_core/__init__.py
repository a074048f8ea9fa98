"""Sans-I/O core: operations declared once, and the call flow that both clients drive."""
