"""Examples of the ``polygons`` config: building polygons over web-map chips or GeoTIFF scenes.

Two layouts are read from the manual folder (a folder found at most two levels down):

- **chips** (HOT fAIr / RAMP): images named by their XYZ tile, ``OAM-<x>-<y>-<z>.<png|jpg|tif>``, beside one
  ``labels.geojson``; each chip's bounds come from its name. A file is decoded by its content, whatever its
  suffix says (24 of fAIr's Kampala ``.png`` chips are JPEGs: counted and said).
- **scenes**: GeoTIFF / COG / VRT files beside one or more vector files (GeoJSON, GeoPackage, Shapefile,
  FlatGeobuf), cut into windows of ``window`` pixels; the polygons are reprojected onto each scene's CRS.
  Every band but an alpha band is kept (RGB first, then e.g. near-infrared: train.py --bands picks them),
  read as predict.py reads it (``common.rasters.RasterSource``: a band that is not 8-bit is scaled onto
  0..255 from its own 2-98% range over the scene).

Each example: the image (RGB for chips; every band of a scene), the mask (0 background, 1 building,
``NODATA_LABEL`` where the image has no data: alpha 0, a nodata value, outside a scene), the building ids
(each polygon its own id; ``NODATA_ID`` at no-data) and a file name that starts with its place, so that
``--holdout`` and ``--folds`` keep places whole: a scene's windows share the scene's name, and chips share a block of
the tiling (the zoom-``GROUP_ZOOM`` tile above them), so chips of several zooms over the same ground
stay together.
"""

import contextlib
import io
from pathlib import Path

import numpy as np

from common.polygons import VECTOR_SUFFIXES, PolygonIndex, read_polygons, reproject, tile_of, tile_transform
from data.targets import NODATA_ID, NODATA_LABEL

CHIP_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SCENE_SUFFIXES = (".tif", ".tiff", ".vrt")
GROUP_ZOOM = 19  # chips are grouped by the zoom-19 tile they lie in (about 75 m a side at the equator)
WINDOW = 512  # scenes are cut into windows of this many pixels a side


def find_layout(manual_dir):
    """("chips", folder) or ("scenes", folder): the first folder (the manual folder, or one or two levels below)
    holding a labels.geojson beside tile-named images, or rasters beside vector files."""
    manual_dir = Path(manual_dir)
    if not manual_dir.is_dir():
        raise ValueError(
            f"The manual folder does not exist: {manual_dir}. Put the chips or scenes and their labels there."
        )
    for folder in [manual_dir, *sorted(manual_dir.glob("*/")), *sorted(manual_dir.glob("*/*/"))]:
        files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
        suffixes = {p.suffix.lower() for p in files}
        if (folder / "labels.geojson").is_file() and suffixes & set(CHIP_SUFFIXES):
            return "chips", folder
        if suffixes & set(SCENE_SUFFIXES) and suffixes & set(VECTOR_SUFFIXES):
            return "scenes", folder
    raise ValueError(
        f"No building polygons found in {manual_dir}: expected either web-map chips (OAM-<x>-<y>-<z>.png ...) "
        "beside a labels.geojson (the fAIr / RAMP layout), or GeoTIFF / VRT scenes beside vector files "
        "(GeoJSON, GeoPackage, Shapefile, FlatGeobuf)."
    )


def decode_chip(path):
    """(uint8 RGB (H, W, 3), bool valid (H, W), the format PIL found) of a chip, by its content."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(Path(path).read_bytes())) as image:
            found = image.format
            image.load()
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            rgba = np.asarray(image.convert("RGBA"))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: not an image PIL can read ({error}). Remove or replace the chip.") from None
    valid = rgba[..., 3] > 0 if has_alpha else np.ones(rgba.shape[:2], bool)
    return np.ascontiguousarray(rgba[..., :3]), valid, found


def labelled(image, valid, ids):
    """(image, mask, ids) with no-data marked: mask 0/1/NODATA_LABEL, ids wrapped into 1..NODATA_ID - 1."""
    ids = np.where(ids > 0, (ids.astype(np.int64) - 1) % (NODATA_ID - 1) + 1, 0)
    mask = np.where(valid, ids > 0, NODATA_LABEL).astype(np.uint8)
    ids = np.where(valid, ids, NODATA_ID).astype(np.uint16)
    image = np.where(valid[..., None], image, 0).astype(np.uint8)
    return image, mask[..., None], ids[..., None]


def chip_name(chip, x, y, z):
    """A chip's example name: its place (the zoom-GROUP_ZOOM tile above it), "__", its file name."""
    shift = max(z - GROUP_ZOOM, 0)
    return f"z{min(z, GROUP_ZOOM)}_{x >> shift}_{y >> shift}__{Path(chip).name}"


def example_names(kind, folder, window=WINDOW):
    """The names of every example of a layout, read from the file names and the scenes' sizes alone (every chip
    name checked as a tile first), so the splits can be chosen before any pixel is decoded."""
    if kind == "chips":
        chips = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in CHIP_SUFFIXES)
        return [chip_name(chip, *tile_of(chip)) for chip in chips]
    import rasterio

    names = []
    for scene in sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in SCENE_SUFFIXES):
        with rasterio.open(scene) as source:
            names += [f"{scene.stem}__r{top}_c{left}.png" for top in range(0, source.height, window)
                      for left in range(0, source.width, window)]  # fmt: skip
    return names


def chip_examples(folder, keep=lambda name: True, say=print):
    """(file name, image, mask, ids) of every chip in ``folder`` whose name ``keep`` accepts (asked before it is
    decoded); the polygons of its labels.geojson burnt in."""
    geometries, crs = read_polygons(folder / "labels.geojson")
    index = PolygonIndex(reproject(geometries, crs, "EPSG:3857"))
    chips = sorted(p for p in folder.iterdir() if p.suffix.lower() in CHIP_SUFFIXES)
    tiles = {chip: tile_of(chip) for chip in chips}  # every name checked before any decoding
    mislabelled = []
    for chip in chips:
        x, y, z = tiles[chip]
        name = chip_name(chip, x, y, z)
        if not keep(name):
            continue
        image, valid, found = decode_chip(chip)
        if found and f".{found.lower()}".replace(".jpeg", ".jpg") != chip.suffix.lower().replace(".jpeg", ".jpg") \
                and not (found == "TIFF" and chip.suffix.lower() in (".tif", ".tiff")):  # fmt: skip
            mislabelled.append(f"{chip.name} ({found})")
        ids = index.burn(tile_transform(x, y, z, image.shape[1], image.shape[0]), *image.shape[:2])
        yield (name, *labelled(image, valid, ids))
    if mislabelled:
        say(f"note: {len(mislabelled)} chip(s) hold another format than their suffix says, read by their content: "
            f"{', '.join(mislabelled[:5])}{' ...' if len(mislabelled) > 5 else ''}")  # fmt: skip


def scene_examples(folder, keep=lambda name: True, window=WINDOW):
    """(file name, image, mask, ids) of every window of every scene in ``folder`` whose name ``keep`` accepts,
    with the polygons of every vector file there reprojected onto the scene; a vector file that overlaps no
    scene is refused before any window is read."""
    import rasterio
    import shapely
    from rasterio.transform import array_bounds
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    from common.rasters import RasterSource, gdal_options

    vectors = sorted(p for p in folder.iterdir() if p.suffix.lower() in VECTOR_SUFFIXES)
    scenes = sorted(p for p in folder.iterdir() if p.suffix.lower() in SCENE_SUFFIXES)
    layers = [(path, *read_polygons(path)) for path in vectors]
    polygons, used, counts = {}, set(), {}
    for scene in scenes:  # first every scene's polygons, so a file that overlaps none stops the build before work
        with rasterio.open(scene) as source:
            counts[scene.name] = len(data_bands(source))
            if source.crs is None or counts[scene.name] < 3:
                raise ValueError(f"{scene}: a scene needs a CRS and three bands (RGB) to lay polygons on it.")
            footprint = shapely.box(*array_bounds(source.height, source.width, source.transform))
            moved = []
            for path, geometries, crs in layers:
                here = reproject(geometries, crs, source.crs)
                inside = here[shapely.intersects(here, footprint)] if len(here) else here
                used.update([path] if len(inside) else [])
                moved.append(inside)
            polygons[scene] = np.concatenate(moved) if moved else np.array([], dtype=object)
    if len(set(counts.values())) > 1:
        raise ValueError(f"the scenes in {folder} have different numbers of bands ({counts}); one dataset holds "
                         "scenes of one kind: move the others to a folder of their own.")  # fmt: skip
    unused = [str(path) for path, _, _ in layers if path not in used]
    if unused:
        raise ValueError(
            f"{', '.join(unused)}: overlaps no scene in {folder}. Check its CRS (a GeoJSON is lon/lat) and that it "
            "covers the scenes, or move it out of the folder."
        )
    for scene in scenes:
        index = PolygonIndex(polygons.pop(scene))
        with rasterio.open(scene) as opened:
            bands = data_bands(opened)
        # predict.py's GDAL block cache (the default, 5% of the RAM, grows with the scene): memory stays bounded
        reader = RasterSource(scene, bands=bands, channels=len(bands))
        with rasterio.Env(**gdal_options()), contextlib.closing(reader) as source:
            for top in range(0, source.height, window):
                for left in range(0, source.width, window):
                    name = f"{scene.stem}__r{top}_c{left}.png"
                    if not keep(name):
                        continue
                    bottom, right = min(top + window, source.height), min(left + window, source.width)
                    image = source.read(top, bottom, left, right)
                    valid = source.valid(top, bottom, left, right)
                    valid = np.ones(image.shape[:2], bool) if valid is None else valid
                    area = Window(left, top, right - left, bottom - top)
                    ids = index.burn(window_transform(area, source.transform), bottom - top, right - left)
                    yield (name, *labelled(image, valid, ids))


def data_bands(source):
    """The 1-based numbers of an open raster's bands that hold data (every band but an alpha band)."""
    from rasterio.enums import ColorInterp

    return [index + 1 for index, meaning in enumerate(source.colorinterp) if meaning != ColorInterp.alpha]
