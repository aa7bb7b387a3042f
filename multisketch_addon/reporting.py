"""One way for an operator to tell the user how it went: a sentence when it worked, the error when not."""

from __future__ import annotations

import bpy

from .contract import errors


class ReportingOperator(bpy.types.Operator):
    """An operator whose work is `act`: its sentence becomes the INFO report, and a UserError (every error the
    add-on raises for the user) the ERROR report, which cancels the operator and so leaves no undo step."""

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            done = self.act(context)
        except errors.UserError as exc:
            message = str(exc)
            self.report({"ERROR"}, message[:1].upper() + message[1:])
            return {"CANCELLED"}
        self.report({"INFO"}, done)
        return {"FINISHED"}

    def act(self, context: bpy.types.Context) -> str:
        raise NotImplementedError
