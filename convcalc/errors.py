"""The one base class for errors a user can cause and fix (bad spec, missing data, ...).

The CLI turns a ``ConvcalcError`` into its message on stderr and exit code 1, never a
traceback; anything else escaping is a bug.
"""


class ConvcalcError(Exception):
    """An expected, user-fixable error; ``str(error)`` names the place and the fix."""


class SpecError(ConvcalcError):
    """A spec that cannot be loaded; ``problems`` holds one message per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))
