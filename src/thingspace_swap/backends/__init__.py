"""The adapters: the swap side's ports ([thingspace_swap.swap.ports][thingspace_swap.swap.ports]) on
memory, SQLite and AWS, one subpackage or module each."""
