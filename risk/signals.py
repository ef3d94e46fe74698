"""Signals of the risk app.

``kill_switch_activated(state=KillSwitchState, flatten=bool)`` is sent after the activation
has committed (``transaction.on_commit``), once per activation call. The trading app connects
to it to cancel pending orders, halt its strategies and, with ``flatten``, close positions.
"""

from __future__ import annotations

from django.dispatch import Signal

kill_switch_activated = Signal()
