"""The Textual TUI (``convcalc tui [SPEC]``): a live CNN designer and a training screen.

``model`` holds the state and edits (no textual); ``designer``, ``editor`` and ``dialogs`` the
designer; ``training`` the training screen, which imports torch only when it starts a run.
"""
