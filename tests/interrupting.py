"""Stand-ins for ``attack_batches`` that simulate Ctrl-C in a given batch, or record where loops start
(the resume tests of eval, interp, overlap and run_attack)."""


def interrupting(real, *, batch: int, call: int = 1):
    """``(fake, calls)``: ``fake`` runs ``real`` (appending each call's ``start`` to ``calls``) and raises
    KeyboardInterrupt before batch ``batch`` (0-based) of call ``call`` (1-based)."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(kwargs.get("start", 0))
        n = len(calls)
        for k, b in enumerate(real(*args, **kwargs)):
            if n == call and k == batch:
                raise KeyboardInterrupt
            yield b
    return fake, calls


def recording(real):
    """``(fake, calls)``: ``fake`` runs ``real``, appending each call's ``start`` to ``calls``."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(kwargs.get("start", 0))
        return real(*args, **kwargs)
    return fake, calls
