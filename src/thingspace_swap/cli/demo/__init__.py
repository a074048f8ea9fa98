"""``thingspace-swap demo``: the whole swap lifecycle on the built-in simulator, no credentials.

An inventory is generated, N devices are swapped (ICCID, IMEI or both, some with a plan change)
through validation, the durable SQLite queue and store, workers, CarrierService callbacks
(checked by a [CallbackIntake][thingspace_swap.swap.CallbackIntake]), settling and verification. A
few devices are designed to fail validation and a few to fail on ThingSpace; the exit code is 0 only
when every device ended where it should, nothing was submitted twice and the audit trail holds.
"""

from __future__ import annotations

from ._plan import DemoOptions, faults_preset
from ._run import run_demo

__all__ = ["DemoOptions", "faults_preset", "run_demo"]
