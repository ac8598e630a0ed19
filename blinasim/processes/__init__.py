"""One module per mechanism; each exposes a process object the model steps in order."""
