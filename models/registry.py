"""What encoders and decoders share: the registry pattern (a dict plus a decorator) and the pyramid's stride."""

# Every encoder's deepest pyramid level P5 is at stride 2**5: model inputs are multiples of it
# (training crops, prediction windows, padding inside exported models).
OUTPUT_STRIDE = 32


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
