"""Mapping at scale: windowed reading, streamed outputs, footprints merged across strips, bad rasters."""

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from scipy import ndimage

import predict
from common.images import decode_image
from common.rasters import RasterSource, SceneReadError, open_scene
from inference.footprints import StripTracer, regularize, trace
from inference.tiling import make_logit_fn, predict_probabilities, predict_strips, sigmoid
from tests.helpers import count_buildings

UTM = "EPSG:32640"  # Dubai's UTM zone: metres


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import keras

    from models import create_model

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    create_model("fcn8", "resnet18", input_shape=(None, None, 3)).save(path)
    return path


@pytest.fixture(scope="module")
def logit_fn(model_file):
    from inference.loading import load_segmenter

    return make_logit_fn(load_segmenter(model_file)[0])


def _geotiff(path, image, *, crs=UTM, transform=None, **options):
    """Write an (H, W, C) array as a GeoTIFF (UTM, 0.5 m pixels unless told)."""
    transform = transform or from_origin(500_000, 2_800_000, 0.5, 0.5)
    with rasterio.open(
        path, "w", driver="GTiff", width=image.shape[1], height=image.shape[0], count=image.shape[2],
        dtype=image.dtype.name, crs=crs, transform=transform, **options,
    ) as target:  # fmt: skip
        target.write(np.moveaxis(image, -1, 0))
    return path


def _stream(logit_fn, source, **tiling):
    reads = []
    read = source.read

    def spy(y0, y1, x0, x1):
        reads.append((y1 - y0) * (x1 - x0))
        return read(y0, y1, x0, x1)

    source.read = spy
    probabilities = np.concatenate([sigmoid(logits) for _, logits in predict_strips(logit_fn, source, **tiling)])
    return probabilities, reads


def _pixels(buildings, shape):
    """The mask the footprints cover (pixel coordinates), rasterised back."""
    from rasterio import features

    shapes = [(b["polygon"], 1) for b in buildings]
    return features.rasterize(shapes, out_shape=shape, dtype="uint8").astype(bool) if shapes else np.zeros(shape, bool)


@pytest.mark.slow  # a giant of the default suite (30 s or more on 2 cores); run with -m slow
def test_streaming_equals_the_whole_scene_on_the_sample(sample_dir, logit_fn):
    scenes = sorted((sample_dir / "building_data" / "test" / "src").iterdir())
    assert len(scenes) == 5
    for path in scenes:
        whole = predict_probabilities(logit_fn, decode_image(path.read_bytes(), str(path)), tile=256, overlap=32)
        source = RasterSource(path)
        streamed, reads = _stream(logit_fn, source, tile=256, overlap=32)
        source.close()
        assert max(reads) <= 256 * 256  # one window read at a time, never the scene
        np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-5)
        threshold = float(np.median(whole))  # about half the pixels: a noisy mask with many buildings
        np.testing.assert_array_equal(streamed >= threshold, whole >= threshold)
        mask = whole >= threshold
        strips, tracer = [], StripTracer(min_area=0)
        for y in range(0, len(mask), 100):
            strips += tracer.add(y, mask[y : y + 100], whole[y : y + 100])
        strips += tracer.finish()
        assert len(strips) == ndimage.label(mask)[1] == count_buildings(mask, min_area=0)
        assert all(b["polygon"].is_valid and b["polygon"].geom_type == "Polygon" for b in strips)
        np.testing.assert_array_equal(_pixels(strips, mask.shape), mask)  # the polygons cover exactly the mask
        assert sum(b["pixels"] for b in strips) == mask.sum()


def test_a_building_across_many_strips_is_one_polygon():
    mask = np.zeros((200, 120), bool)
    mask[5:190, 10:20] = True  # a tall building crossing every strip
    mask[30:40, 20:100] = True  # joined to it by a wing
    mask[60:150:2, 60:70] = True  # thin stripes: separate buildings, one per strip boundary pair
    mask[100:180, 80:110] = True
    mask[100:180, 95] = False  # a slit from the top edge of the block down...
    mask[179, 90:100] = True  # ... closed at the bottom: a U shape spanning strips
    probabilities = np.where(mask, 0.9, 0.1).astype("float32")
    transform = from_origin(1000.0, 2000.0, 0.5, 0.5)
    whole = trace(mask, probabilities, transform, min_area=0)
    tracer, streamed = StripTracer(transform, min_area=0), []
    for y in range(0, 200, 7):  # 29 strips
        streamed += tracer.add(y, mask[y : y + 7], probabilities[y : y + 7])
    streamed += tracer.finish()
    assert len(streamed) == ndimage.label(mask)[1] == len(whole) == 2 + 45
    for building in streamed:
        [twin] = [b for b in whole if b["polygon"].equals(building["polygon"])]  # the same outline, once
        assert building["pixels"] == twin["pixels"]
        assert building["mean_probability"] == pytest.approx(0.9)
    tall = max(streamed, key=lambda b: b["pixels"])
    assert tall["pixels"] == 185 * 10 + 10 * 80 and len(tall["polygon"].interiors) == 0


def test_noisy_masks_give_valid_polygons_one_per_building():
    rng = np.random.default_rng(1)
    noisy = rng.random((150, 130)) > 0.5
    tracer, buildings = StripTracer(from_origin(0.0, 0.0, 1.0, 1.0), min_area=1), []
    for y in range(0, 150, 11):
        buildings += tracer.add(y, noisy[y : y + 11], noisy[y : y + 11].astype("float32"))
    buildings += tracer.finish()
    assert len(buildings) == count_buildings(noisy, min_area=1)
    assert all(b["polygon"].is_valid for b in buildings)


def test_regularize_squares_a_rotated_building():
    from rasterio import features
    from shapely import affinity
    from shapely.geometry import box

    building = affinity.rotate(box(30, 40, 90, 70), 25, origin=(60, 55))  # 60 x 30, turned 25 degrees
    mask = features.rasterize([(building, 1)], out_shape=(120, 120)).astype(bool)
    [traced] = trace(mask, min_area=0)
    squared = regularize(traced["polygon"], tolerance=1.0)
    assert len(traced["polygon"].exterior.coords) > 40  # a pixel staircase
    assert len(squared.exterior.coords) == 5 and squared.is_valid
    corners = np.asarray(squared.exterior.coords)
    edges = np.diff(corners, axis=0)
    angles = np.degrees(np.arctan2(edges[:, 1], edges[:, 0])) % 90
    assert np.all(np.minimum(np.abs(angles - 25), np.abs(angles - 115 % 90)) < 2)  # along the building
    assert squared.area == pytest.approx(building.area, rel=0.05)
    [simple] = trace(mask, min_area=0, simplify=1.0)
    assert 4 <= len(simple["polygon"].exterior.coords) < 20 and simple["polygon"].is_valid


def test_predict_writes_cogs_and_a_geopackage_in_the_inputs_crs(sample_dir, model_file, logit_fn, tmp_path):
    from pyogrio import read_info
    from pyogrio.raw import read

    original = sample_dir / "building_data" / "test" / "src" / "dubai_image_part_007t8.tiff"
    pixels = decode_image(original.read_bytes(), str(original))
    scene = _geotiff(tmp_path / "dubai.tif", pixels, tiled=True, compress="deflate")
    whole = predict_probabilities(logit_fn, pixels)  # predict.py's defaults: 1024 windows, overlap 64
    threshold = float(np.median(whole))
    mask = whole >= threshold
    out = predict.main(
        [*("--model", str(model_file), str(scene), "--out", str(tmp_path / "out"), "--threshold", str(threshold)),
         *("--precision", "float32")]  # exact: within 1e-5 of the in-memory float32 prediction
    )  # fmt: skip
    with rasterio.open(scene) as source, rasterio.open(out / "dubai_prob.tif") as prob:
        assert prob.crs == source.crs and prob.transform == source.transform
        assert prob.overviews(1) == [2, 4, 8] and prob.block_shapes[0] == (512, 512)
        assert prob.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and prob.compression.name == "deflate"
        assert prob.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"  # floating-point predictor
        np.testing.assert_allclose(prob.read(1), whole, rtol=0, atol=1e-5)
    with rasterio.open(out / "dubai_mask.tif") as written:
        assert written.overviews(1) == [2, 4, 8] and written.crs.to_epsg() == 32640
        np.testing.assert_array_equal(written.read(1), mask.astype("uint8") * 255)
    info = read_info(out / "dubai.gpkg", layer="buildings")
    buildings = count_buildings(mask)
    assert info["crs"] == UTM and info["features"] == buildings > 100 and info["geometry_type"] == "Polygon"
    assert info["capabilities"]["fast_spatial_filter"]  # the R*Tree spatial index (inference/__init__.py)
    meta, _, geometry, (ids, area_pixels, area_crs, area_m2, mean_probability) = read(out / "dubai.gpkg")
    assert list(meta["fields"]) == ["id", "area_pixels", "area_crs_units", "area_m2", "mean_probability"]
    assert sorted(ids) == list(range(buildings)) and min(area_pixels) >= 16
    np.testing.assert_allclose(area_crs, area_pixels * 0.25, rtol=1e-9)  # 0.5 m pixels
    np.testing.assert_allclose(area_m2, area_crs, rtol=2e-3)  # geodesic vs UTM grid (scale 0.9996 near the meridian)
    assert threshold <= min(mean_probability) and max(mean_probability) <= 1
    collection = json.loads((out / "dubai.geojson").read_text())  # a small georeferenced scene: GeoJSON too
    assert len(collection["features"]) == buildings
    suffixes = ("_prob.tif", "_mask.tif", ".gpkg", ".geojson", "_mask.png", "_prob.png", "_overlay.jpg")
    assert sorted(p.name for p in out.iterdir()) == sorted(f"dubai{suffix}" for suffix in suffixes)


def test_a_geopackage_without_its_spatial_index_is_reported(tmp_path):
    """TensorFlow loaded before pyogrio: GDAL gets TensorFlow's SQLite (no R*Tree); the writer says so."""
    import subprocess
    import sys
    from pathlib import Path

    code = f"""
import warnings, tensorflow, shapely, pyogrio
from inference.vectors import FootprintWriter
writer = FootprintWriter({str(tmp_path / "f.gpkg")!r}, crs=None)
writer.add([dict(polygon=shapely.box(i, 0, i + 1, 1), pixels=1, mean_probability=0.9) for i in range(3)])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    writer.close()
notes = [str(w.message) for w in caught if "spatial index" in str(w.message)]
print(pyogrio.read_info({str(tmp_path / "f.gpkg")!r})["features"], notes)
"""
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    features, warned = run.stdout.strip().split(" ", 1)
    assert features == "3" and "f.gpkg has no spatial index: TensorFlow was imported before pyogrio" in warned


def _bad_rasters(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for name, bands, dtype in [("a", 3, "uint8"), ("b1", 1, "uint8"), ("b2", 2, "uint8"), ("b4", 4, "uint8"),
                               ("u16", 3, "uint16"), ("z", 3, "uint8")]:  # fmt: skip
        high = 4000 if dtype == "uint16" else 255
        _geotiff(folder / f"{name}.tif", (rng.random((100, 140, bands)) * high).astype(dtype))
    big = _geotiff(
        folder / "big.tif", (rng.random((600, 600, 3)) * 255).astype("uint8"), tiled=True, compress="deflate"
    )
    data = big.read_bytes()
    (folder / "trunc.tif").write_bytes(data[: len(data) // 2])  # the header is whole, the last blocks are not
    big.unlink()
    (folder / "mosaic.vrt").write_text(f"""<VRTDataset rasterXSize="280" rasterYSize="100">
  <SRS>{UTM}</SRS><GeoTransform>500000, 0.5, 0, 2800000, 0, -0.5</GeoTransform>
  <VRTRasterBand dataType="Byte" band="1">
    <SimpleSource><SourceFilename relativeToVRT="1">a.tif</SourceFilename><SourceBand>1</SourceBand>
      <SrcRect xOff="0" yOff="0" xSize="140" ySize="100"/>
      <DstRect xOff="0" yOff="0" xSize="140" ySize="100"/></SimpleSource>
    <SimpleSource><SourceFilename relativeToVRT="1">gone.tif</SourceFilename><SourceBand>1</SourceBand>
      <SrcRect xOff="0" yOff="0" xSize="140" ySize="100"/>
      <DstRect xOff="140" yOff="0" xSize="140" ySize="100"/></SimpleSource>
  </VRTRasterBand>
</VRTDataset>""")


def test_bad_rasters_are_named_and_other_scenes_kept(model_file, tmp_path, capsys):
    _bad_rasters(tmp_path / "in")
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="4 of 8 input"):
        predict.main(["--model", str(model_file), str(tmp_path / "in"), "--out", str(out), "--tile", "128"])
    captured = capsys.readouterr()
    for name, says in [
        ("b1.tif", "has 1 band(s), but the models take three (RGB). Pass --bands 1,1,1"),
        ("b2.tif", "has 2 band(s), but the models take three (RGB). Pass --bands 1,1,1"),
        ("trunc.tif", "The file is truncated or damaged"),
        ("mosaic.vrt", f"refers to source file(s) that do not exist: {tmp_path / 'in' / 'gone.tif'}"),
    ]:
        assert f"skipped {tmp_path / 'in' / name}: " in captured.err and says in captured.err
    assert "b4: 140x100" in captured.out and "4 bands: using bands 1,2,3" in captured.out
    assert "u16: 140x100" in captured.out and "uint16: bands scaled to 8-bit from their 2-98% ranges" in captured.out
    stems = {p.name.split("_")[0].split(".")[0] for p in out.iterdir()}
    assert stems == {"a", "b4", "u16", "z"} and not [p for p in out.iterdir() if "partial" in p.name]
    for stem in ("a", "b4", "u16", "z"):
        assert (out / f"{stem}_mask.tif").exists() and (out / f"{stem}.gpkg").exists()
    grey = predict.main(["--model", str(model_file), str(tmp_path / "in" / "b1.tif"), "--bands", "1,1,1",
                         "--out", str(tmp_path / "grey"), "--tile", "128"])  # fmt: skip
    assert (grey / "b1_mask.tif").exists()


def test_sixteen_bit_bands_are_scaled_by_their_percentiles(tmp_path):
    _bad_rasters(tmp_path / "in")
    with rasterio.open(tmp_path / "in" / "u16.tif") as raw:
        values = raw.read().astype("float64")
    source = open_scene(tmp_path / "in" / "u16.tif")
    got = source.read(0, 100)
    source.close()
    low, high = np.percentile(values.reshape(3, -1), [2, 98], axis=1)
    expected = np.clip((values - low[:, None, None]) / (high - low)[:, None, None] * 255, 0, 255).round()
    np.testing.assert_array_equal(got, np.moveaxis(expected, 0, -1).astype("uint8"))
    with pytest.raises(SceneReadError, match=r"--bands 4,1,1 does not fit .*u16.tif, which has 3 band"):
        open_scene(tmp_path / "in" / "u16.tif", bands=(4, 1, 1))


def test_a_vrt_mosaic_is_predicted_like_the_image_it_assembles(model_file, logit_fn, tmp_path):
    rng = np.random.default_rng(3)
    left, right = (ndimage.uniform_filter(rng.random((120, 150, 3)) * 255, 5).astype("uint8") for _ in range(2))
    _geotiff(tmp_path / "left.tif", left)
    _geotiff(tmp_path / "right.tif", right, transform=from_origin(500_075, 2_800_000, 0.5, 0.5))
    bands = "".join(
        f"""<VRTRasterBand dataType="Byte" band="{b}">""" + "".join(
            f"""<SimpleSource><SourceFilename relativeToVRT="1">{name}.tif</SourceFilename><SourceBand>{b}</SourceBand>
            <SrcRect xOff="0" yOff="0" xSize="150" ySize="120"/>
            <DstRect xOff="{x}" yOff="0" xSize="150" ySize="120"/></SimpleSource>"""
            for name, x in (("left", 0), ("right", 150))
        ) + "</VRTRasterBand>"
        for b in (1, 2, 3)
    )  # fmt: skip
    (tmp_path / "mosaic.vrt").write_text(
        f"""<VRTDataset rasterXSize="300" rasterYSize="120"><SRS>{UTM}</SRS>
        <GeoTransform>500000, 0.5, 0, 2800000, 0, -0.5</GeoTransform>{bands}</VRTDataset>"""
    )
    out = predict.main(["--model", str(model_file), str(tmp_path / "mosaic.vrt"), "--out", str(tmp_path / "out"),
                        "--tile", "128", "--overlap", "32", "--precision", "float32"])  # fmt: skip
    expected = predict_probabilities(logit_fn, np.concatenate([left, right], axis=1), tile=128, overlap=32)
    with rasterio.open(out / "mosaic_prob.tif") as prob:
        assert prob.crs.to_epsg() == 32640 and prob.transform == from_origin(500_000, 2_800_000, 0.5, 0.5)
        np.testing.assert_allclose(prob.read(1), expected, rtol=0, atol=1e-5)
