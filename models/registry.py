"""What encoders and decoders share: the registry pattern (a dict plus a decorator) and the pyramid's stride."""

# Every encoder's deepest pyramid level P5 is at stride 2**5: model inputs are multiples of it
# (training crops, prediction windows, padding inside exported models).
OUTPUT_STRIDE = 32


def registrar(table, kind, properties=None, defaults=None):
    """A ``register(name, **facts)`` decorator factory that fills ``table`` and refuses duplicates.

    ``facts`` (keyword properties of the registered thing, e.g. a decoder's ``fixed_size``) go to
    ``properties[name]``, on top of ``defaults``; the registry is where such facts live.
    """

    def register(name, **facts):
        unknown = set(facts) - set(defaults or {})
        if unknown:
            raise ValueError(f"{kind} {name!r}: unknown properties {sorted(unknown)}; known: {sorted(defaults or {})}")

        def decorator(builder):
            if name in table:
                raise ValueError(f"{kind} name registered twice. Received: name={name!r}")
            table[name] = builder
            if properties is not None:
                properties[name] = {**(defaults or {}), **facts}
            return builder

        return decorator

    return register
