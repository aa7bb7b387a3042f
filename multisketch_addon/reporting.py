"""One way for an operator to tell the user how it went: a sentence when it worked, the error when not."""

from __future__ import annotations

from typing import Literal

import bpy

from .contract import errors

ReportLevel = Literal["INFO", "WARNING", "ERROR"]


class ReportingOperator(bpy.types.Operator):
    """An operator whose work is `act`: its sentence becomes the INFO report, and a UserError (every error the
    add-on raises for the user) the ERROR report, which cancels the operator and so leaves no undo step. A modal
    operator, whose work does not fit one `act` call, overrides `execute` and still reports through `tell`."""

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            done = self.act(context)
        except errors.UserError as exc:
            self.tell("ERROR", exc)
            return {"CANCELLED"}
        self.tell("INFO", done)
        return {"FINISHED"}

    def act(self, context: bpy.types.Context) -> str:
        raise NotImplementedError

    def tell(self, level: ReportLevel, message: str | errors.UserError) -> None:
        """Report a sentence, or the UserError that stopped the work, as the user reads every report: starting with
        a capital (errors are worded to follow a colon as well, "cannot read ...")."""
        text = str(message)
        self.report({level}, text[:1].upper() + text[1:])
