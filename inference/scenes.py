"""Find the scenes to predict (and their labels), keeping any georeferencing.

Scenes are read by ``common.rasters`` (GDAL rasters in windows, PNG/JPEG by the data
layer's decoder, the same decoding the training data went through); the georeferencing
(CRS and affine transform, from a GeoTIFF's tags or a world file) is read with rasterio.
"""

import glob
from pathlib import Path

from common.images import IMAGE_SUFFIXES, decode_mask

SCENE_SUFFIXES = (*IMAGE_SUFFIXES, ".vrt")  # VRT mosaics are read through GDAL
HINT = "Fix or convert the file, or leave it out of the inputs, then run predict.py again."


REMOTE_PREFIXES = ("/vsi", "gs://", "s3://", "http://", "https://")  # read by GDAL, not listed here


def expand_inputs(paths, list_file=None):
    """Paths with globs expanded (sorted) and the lines of ``list_file`` (one path per line; # comments) added."""
    entries = list(paths)
    if list_file:
        try:
            lines = Path(list_file).read_text().splitlines()
        except OSError as error:
            raise ValueError(
                f"--inputs-from {list_file}: cannot read it ({error.strerror}). Pass a text file of paths."
            ) from None
        entries += [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    expanded = []
    for entry in entries:
        # an existing file or folder is itself, whatever characters its name holds ("a[1].tif"); else a pattern
        if any(ch in entry for ch in "*?[") and not entry.startswith(REMOTE_PREFIXES) and not Path(entry).exists():
            matches = sorted(glob.glob(entry))
            if not matches:
                raise ValueError(
                    f"Input pattern {entry!r} matches no file, and no file has that name. Check the pattern "
                    "(quote it in the shell)."
                )
            expanded += matches
        else:
            expanded.append(entry)
    return expanded


def list_inputs(paths):
    """Image files named by ``paths`` (files, or folders whose images are taken in name order).

    Paths GDAL reads remotely (``/vsigs/...``, ``gs://...``) are kept as they are, unchecked.
    """
    files = []
    for path in map(Path, paths):
        if str(path).startswith(REMOTE_PREFIXES[:1]) or "://" in str(path):
            files.append(path)
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SCENE_SUFFIXES)
            if not found:
                raise ValueError(
                    f"No images ({', '.join(SCENE_SUFFIXES)}) in the folder {path}. "
                    "Point INPUT at images or a folder of them."
                )
            files += found
        elif path.is_file():
            if path.suffix.lower() not in SCENE_SUFFIXES:
                raise ValueError(f"{path} is not an image this tool reads; use one of {', '.join(SCENE_SUFFIXES)}.")
            files.append(path)
        else:
            raise ValueError(f"Input {path} does not exist. Check the path.")
    stems = {}
    for path in files:
        if path.stem in stems:
            raise ValueError(
                f"{stems[path.stem]} and {path} share the name {path.stem!r}, so their outputs would "
                "overwrite each other. Predict them in separate runs (different --out)."
            )
        stems[path.stem] = path
    return files


def read_label(labels_dir, stem, shape, *, crs=None, transform=None):
    """The (H, W) bool mask named ``stem`` in ``labels_dir``, checked against the scene's size and, when both
    are georeferenced, against its CRS and grid (a label of another place is never scored silently); or, when
    ``labels_dir`` is a vector file of building polygons, their (H, W) building ids on the scene's grid."""
    from common.polygons import VECTOR_SUFFIXES, burn_labels

    labels_dir = Path(labels_dir)
    if labels_dir.is_file() and labels_dir.suffix.lower() in VECTOR_SUFFIXES:
        ids = burn_labels(labels_dir, crs, transform, *shape)
        if not ids.any():
            raise ValueError(f"No building of {labels_dir} lies on scene {stem!r}. Check that the file covers it.")
        return ids
    # the scene's name is taken literally ("a[1]" or "b*" are names, not patterns)
    candidates = sorted(p for p in labels_dir.glob(f"{glob.escape(stem)}.*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not candidates:
        raise ValueError(
            f"No label for scene {stem!r} in {labels_dir} (expected {stem}.png or {stem}.tif). "
            "Add it, or drop --labels."
        )
    label = candidates[0]
    mask = decode_mask(label.read_bytes(), str(label), hint=HINT)[..., 0] > 0
    if mask.shape != tuple(shape):
        raise ValueError(
            f"Label {label} is {mask.shape[1]}x{mask.shape[0]} but its scene is "
            f"{shape[1]}x{shape[0]} (width x height). Use the label made for this scene."
        )
    if transform is not None:
        check_label_grid(label, crs, transform)
    return mask


def check_label_grid(label, crs, transform):
    """Refuse a georeferenced label whose CRS or pixel grid differs from its scene's."""
    from common.rasters import read_georeference

    label_crs, label_transform = read_georeference(label)
    if label_transform is None:
        return  # a plain mask (the Kaggle PNGs): aligned by its size alone
    advice = "Warp the label onto the scene's grid (gdalwarp -t_srs, -te and -ts of the scene), or drop --labels."
    if crs is not None and label_crs is not None and label_crs != crs:
        raise ValueError(f"Label {label} is in {label_crs.to_string()} but its scene in {crs.to_string()}. {advice}")
    pixel = max(abs(transform.a), abs(transform.e))
    if not label_transform.almost_equals(transform, precision=1e-3 * pixel):
        raise ValueError(
            f"Label {label} lies on another grid than its scene: origin ({label_transform.c:.6g}, "
            f"{label_transform.f:.6g}) with pixels of {label_transform.a:.6g} x {label_transform.e:.6g}, the scene at "
            f"({transform.c:.6g}, {transform.f:.6g}) with {transform.a:.6g} x {transform.e:.6g}. {advice}"
        )


def check_out_dir(out, files, inputs=()):
    """Refuse an --out that holds an input or lies in an input folder: outputs could replace or join the inputs."""
    out = Path(out).resolve()
    for folder in (Path(p).resolve() for p in inputs if Path(p).is_dir()):
        if out == folder or folder in out.parents:
            raise SystemExit(
                f"predict.py: --out {out} lies in the input folder {folder}; outputs would mix with the "
                "inputs (and could be read as inputs by the next run). Choose an --out outside the input folders."
            )
    for path in files:
        if out == path.resolve().parent or out in path.resolve().parents:
            raise SystemExit(
                f"predict.py: --out {out} holds the input {path}; outputs (<name>_mask.png, ...) could "
                "replace inputs or be taken for inputs. Choose an --out outside the input folders."
            )
