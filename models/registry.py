"""The registry pattern shared by encoders and decoders: a dict plus a decorator."""


def registrar(table, kind):
    """A ``register(name)`` decorator factory that fills ``table`` and refuses duplicates."""

    def register(name):
        def decorator(builder):
            if name in table:
                raise ValueError(f"{kind} name registered twice. Received: name={name!r}")
            table[name] = builder
            return builder

        return decorator

    return register
