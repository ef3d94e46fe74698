"""``manage.py killswitch activate|deactivate|status|set-admin-code``: the kill switch from a shell.

    killswitch activate --scope global|STRATEGY --reason TEXT [--flatten]
    killswitch deactivate --admin-code CODE [--scope global|STRATEGY]
    killswitch status
    killswitch set-admin-code --code CODE

STRATEGY is a strategy id or name. A code left out is asked for on a terminal (so it stays out
of the shell history). Every action goes through ``risk.services``; a failure exits non-zero.
"""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from quant.errors import ApplicationError
from risk import selectors, services
from risk.models import KillSwitchState


class Command(BaseCommand):
    help = "Activate, deactivate or show the kill switch, or set its admin code."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", help="username to record as the actor (default: none)")
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        activate = actions.add_parser("activate", help="halt trading (global or one strategy)")
        activate.add_argument("--scope", default="global", help="global, or a strategy id/name")
        activate.add_argument("--reason", required=True, help="why (shown in alerts and audit)")
        activate.add_argument(
            "--flatten", action="store_true", help="also close positions (default: freeze)"
        )
        deactivate = actions.add_parser("deactivate", help="resume (needs the admin code)")
        deactivate.add_argument("--admin-code", dest="admin_code", help="asked for when left out")
        deactivate.add_argument("--scope", default="global", help="global, or a strategy id/name")
        actions.add_parser("status", help="show every kill-switch state")
        code = actions.add_parser("set-admin-code", help="store a new admin code (its hash only)")
        code.add_argument("--code", help="at least 12 characters; asked for when left out")

    def handle(self, *args: Any, **options: Any) -> None:
        user = self._user(options.get("user"))
        action = options["action"]
        try:
            if action == "activate":
                state = services.killswitch_activate(
                    scope=options["scope"],
                    reason=options["reason"],
                    flatten=options["flatten"],
                    user=user,
                )
                self.stdout.write(self.style.ERROR(f"ACTIVATED: {_line(state)}"))
            elif action == "deactivate":
                code = options["admin_code"] or _ask("Admin code: ")
                before = selectors.killswitch_get(scope=options["scope"])
                state = services.killswitch_deactivate(
                    admin_code=code, scope=options["scope"], user=user
                )
                word = "Deactivated" if before is not None and before.active else "Was not active"
                self.stdout.write(self.style.SUCCESS(f"{word}: {_line(state)}"))
            elif action == "status":
                for state in selectors.killswitch_status():
                    self.stdout.write(_line(state))
            else:
                code = options["code"] or _ask("New admin code: ", confirm=True)
                services.admin_code_set(code=code, user=user)
                self.stdout.write(self.style.SUCCESS("Admin code stored (as a hash)."))
        except ApplicationError as error:
            raise CommandError(error.message) from error

    def _user(self, username: str | None) -> Any:
        if not username:
            return None
        found = get_user_model().objects.filter(username=username).first()
        if found is None:
            raise CommandError(f"--user: no user {username!r}")
        return found


def _ask(prompt: str, *, confirm: bool = False) -> str:
    if not sys.stdin.isatty():
        raise CommandError("give the code as an option (no terminal to ask on)")
    code = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again: ") != code:
        raise CommandError("the two codes differ")
    return code


def _line(state: KillSwitchState) -> str:
    if not state.active:
        return f"{state.label}: inactive"
    since = f"{state.activated_at:%Y-%m-%d %H:%M:%S %Z}" if state.activated_at else "?"
    by = state.activated_by.get_username() if state.activated_by else state.source
    return f"{state.label}: ACTIVE ({state.mode}) since {since} by {by}: {state.reason}"
