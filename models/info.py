"""Print parameters and GMACs of a registered encoder (or arch x encoder model).

Usage:
    python -m models.info effnet-b3                 # encoder at its native resolution
    python -m models.info effnet-b0 --size 256      # at 256x256
    python -m models.info effnet-b0 --arch unet     # a whole segmentation model
    python -m models.info effnet-b0 --arch all --size 256   # every decoder on effnet-b0
"""

import argparse

from models.encoders import create_encoder, list_encoders
from models.encoders.registry import encoder_properties
from models.flops import count_macs
from models.registry import OUTPUT_STRIDE


def native_size(encoder_name):
    """The encoder's native resolution (its registry property) rounded up to a multiple of 32."""
    resolution = encoder_properties(encoder_name)["native_size"]
    return -(-resolution // OUTPUT_STRIDE) * OUTPUT_STRIDE


def describe(encoder_name, *, size=None, arch=None):
    """(params, GMACs, size) of an encoder, or of ``arch`` over that encoder."""
    size = size or native_size(encoder_name)
    if arch is None:
        model = create_encoder(encoder_name, input_shape=(size, size, 3))
    else:
        from models.segmenter import create_model

        model = create_model(arch, encoder_name, input_shape=(size, size, 3))
    return model.count_params(), count_macs(model) / 1e9, size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("encoder", nargs="+", help=f"one of: {', '.join(list_encoders())}")
    parser.add_argument("--size", type=int, default=None, help="square input size (multiple of 32)")
    parser.add_argument("--arch", default=None, help="a decoder name or 'all'; omit for the bare encoder")
    args = parser.parse_args(argv)
    from models.decoders import list_archs

    archs = list_archs() if args.arch == "all" else [args.arch]
    print(f"| {'model':<28} | {'size':>5} | {'params':>12} | {'GMACs':>8} |")
    print(f"|{'-' * 30}|{'-' * 7}|{'-' * 14}|{'-' * 10}|")
    for name in args.encoder:
        for arch in archs:
            params, gmacs, size = describe(name, size=args.size, arch=arch)
            label = f"{arch} / {name}" if arch else name
            print(f"| {label:<28} | {size:>5} | {params:>12,} | {gmacs:>8.3f} |")


if __name__ == "__main__":
    main()
