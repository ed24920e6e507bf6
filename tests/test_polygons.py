"""Building polygons burnt into windows as building ids, against masks computed by hand; chips' tile bounds."""

import json

import numpy as np
import pytest
import shapely
from rasterio.transform import Affine, from_origin

from common.polygons import PolygonIndex, read_polygons, reproject, tile_of, tile_transform
from data.targets import separation_targets

GRID = from_origin(0, 16, 1, 1)  # 16 x 16 pixels of 1 unit; pixel (row r, column c) centred at (c + .5, 15.5 - r)


def _box(left, top, right, bottom):
    """A box in pixel columns and rows of GRID: columns [left, right), rows [top, bottom)."""
    return shapely.box(left, 16 - bottom, right, 16 - top)


def test_two_touching_squares_are_two_buildings_with_a_contact_line_between_them():
    ids = PolygonIndex([_box(2, 2, 6, 6), _box(6, 2, 10, 6)]).burn(GRID, 16, 16)
    expected = np.zeros((16, 16), np.uint32)
    expected[2:6, 2:6], expected[2:6, 6:10] = 1, 2
    np.testing.assert_array_equal(ids, expected)
    targets = separation_targets(ids[None, ..., None].astype("float32"), ("building", "border", "contact")).numpy()[0]
    assert targets[..., 0].sum() == 32  # one mask of both
    contact = targets[..., 2] > 0
    assert contact[2:6, 5].all() and contact[2:6, 6].all()  # both sides of the shared wall
    assert not contact[:, :2].any() and not contact[:, 13:].any()  # far from the wall: none


def test_a_hole_stays_empty_and_a_multipolygon_is_one_building():
    ring = _box(2, 2, 10, 10).difference(_box(4, 4, 8, 8))
    pair = shapely.MultiPolygon([_box(11, 1, 13, 3), _box(11, 12, 14, 15)])
    ids = PolygonIndex([ring, pair]).burn(GRID, 16, 16)
    assert (ids == 1).sum() == 64 - 16 and not ids[4:8, 4:8].any()
    assert (ids == 2).sum() == 4 + 9 and ids[1, 11] == ids[14, 13] == 2


def test_a_polygon_across_a_window_edge_burns_as_one_burn_of_the_whole_scene():
    polygons = [shapely.Polygon([(3.2, 2.7), (12.6, 4.1), (10.3, 13.8), (5.1, 11.2)]), _box(0, 0, 16, 1)]
    index = PolygonIndex(polygons)
    whole = index.burn(GRID, 16, 16)
    left = index.burn(GRID, 16, 7)
    right = index.burn(GRID * Affine.translation(7, 0), 16, 9)  # the window starting at column 7
    np.testing.assert_array_equal(np.concatenate([left, right], axis=1), whole)
    lower = index.burn(GRID * Affine.translation(0, 10), 6, 16)
    np.testing.assert_array_equal(lower, whole[10:])
    assert set(np.unique(whole)) == {0, 1, 2}


def test_a_file_in_another_crs_gives_the_ids_of_the_reprojected_one(tmp_path):
    from pyogrio.raw import write

    utm = "EPSG:32636"  # Kampala's UTM zone
    grid = from_origin(452_000, 35_000, 0.5, 0.5)
    squares = [shapely.box(452_003, 34_990, 452_011, 34_996), shapely.box(452_011, 34_990, 452_016, 34_994)]
    for name, crs, geometries in (
        ("utm.gpkg", utm, squares),
        ("lonlat.geojson", "EPSG:4326", reproject(np.array(squares, dtype=object), utm, "EPSG:4326")),
    ):
        write(str(tmp_path / name), geometry=shapely.to_wkb(geometries), field_data=[], fields=[],
              geometry_type="Polygon", crs=crs, driver="GPKG" if name.endswith("gpkg") else "GeoJSON")  # fmt: skip
    burnt = {}
    for name in ("utm.gpkg", "lonlat.geojson"):
        geometries, crs = read_polygons(tmp_path / name)
        burnt[name] = PolygonIndex(reproject(geometries, crs, utm)).burn(grid, 40, 40)
    np.testing.assert_array_equal(burnt["utm.gpkg"], burnt["lonlat.geojson"])
    assert (burnt["utm.gpkg"] == 1).sum() == 16 * 12 and (burnt["utm.gpkg"] == 2).sum() == 10 * 8


def test_tile_names_give_their_known_bounds_and_a_chip_agrees_with_its_polygon():
    import mercantile

    assert tile_of("OAM-1238424-1046544-21.png") == (1238424, 1046544, 21)
    assert tile_of("chips/19-312-10.tif") == (19, 312, 10)  # any x-y-z name
    world = tile_transform(0, 0, 0, 256, 256)  # the whole Web Mercator square
    assert world.c == pytest.approx(-20037508.342789244) and world.f == pytest.approx(20037508.342789244)
    assert world.a == pytest.approx(2 * 20037508.342789244 / 256)
    east = mercantile.bounds(1, 0, 1)
    assert (east.west, east.south, east.east) == (0.0, 0.0, 180.0) and east.north == pytest.approx(85.0511287798)
    # a square over the middle quarter of a Kampala chip, drawn in lon/lat: the chip's middle 128 x 128 pixels
    x, y, z = 1238424, 1046544, 21
    b = mercantile.bounds(x, y, z)
    west, east = b.west + (b.east - b.west) * np.array([0.25, 0.75])
    south, north = b.south + (b.north - b.south) * np.array([0.25, 0.75])
    middle = shapely.box(west, south, east, north)
    ids = PolygonIndex(reproject(np.array([middle], dtype=object), "EPSG:4326", "EPSG:3857")).burn(
        tile_transform(x, y, z, 256, 256), 256, 256
    )
    rows, columns = np.nonzero(ids)
    # lat is not linear in Web Mercator y, but across 19 m it is to far below a pixel
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (64, 191, 64, 191) and len(rows) == 128 * 128


@pytest.mark.parametrize("name", ["OAM-chip.png", "OAM-5-1-2.png", "tile-1-2.png"])
def test_a_chip_name_that_is_no_tile_is_named(name):
    with pytest.raises(ValueError, match=f"{name}: its name is no web-map tile"):
        tile_of(name)


def test_bad_vector_files_are_named_and_invalid_geometries_repaired(tmp_path):
    def geojson(features, **extra):
        path = tmp_path / f"f{len(list(tmp_path.iterdir()))}.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features, **extra}))
        return path

    def feature(kind, coordinates):
        return {"type": "Feature", "properties": {}, "geometry": {"type": kind, "coordinates": coordinates}}

    bowtie = feature("Polygon", [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]])  # self-crossing: GEOS repairs it
    (repaired,), _ = read_polygons(geojson([bowtie]))
    assert repaired.is_valid and repaired.area == pytest.approx(2.0)
    with pytest.raises(ValueError, match="feature 1 .LineString. is not a polygon"):
        read_polygons(geojson([bowtie, feature("LineString", [[0, 0], [1, 1]])]))
    utm = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32636"}}
    with pytest.raises(ValueError, match="its 'crs' member says 'urn:ogc:def:crs:EPSG::32636'"):
        read_polygons(geojson([bowtie], crs=utm))
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(ValueError, match="broken.geojson: not a readable GeoJSON"):
        read_polygons(broken)


def _chip_folder(folder):
    """Two chips of Kampala's tiling (one RGBA with a no-data corner, one JPEG named .png) and two touching
    buildings drawn in lon/lat over the first."""
    import mercantile
    from PIL import Image

    folder.mkdir()
    x, y, z = 1238424, 1046544, 21
    rgba = np.full((256, 256, 4), 200, np.uint8)
    rgba[:64, :64, 3] = 0  # outside the mosaic
    Image.fromarray(rgba).save(folder / f"OAM-{x}-{y}-{z}.png")
    Image.fromarray(np.full((256, 256, 3), 90, np.uint8)).save(folder / f"OAM-{x + 1}-{y}-{z}.png", format="JPEG")
    b = mercantile.bounds(x, y, z)

    def lonlat(column, row):  # a pixel corner of the first chip in lon/lat (linear is exact to far below a pixel)
        return b.west + (b.east - b.west) * column / 256, b.north - (b.north - b.south) * row / 256

    def square(left, top, right, bottom):
        corners = [lonlat(left, top), lonlat(right, top), lonlat(right, bottom), lonlat(left, bottom)]
        return {"type": "Feature", "properties": {"osm_id": None},
                "geometry": {"type": "Polygon", "coordinates": [[*map(list, corners), list(corners[0])]]}}  # fmt: skip

    features = [square(100, 100, 140, 140), square(140, 100, 180, 140)]  # touching at column 140
    (folder / "labels.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return folder


def test_chips_build_into_ids_no_data_and_places(tmp_path, capsys):
    from data.buildings.polygon_sources import chip_examples
    from data.targets import NODATA_ID, NODATA_LABEL

    examples = {name: rest for name, *rest in chip_examples(_chip_folder(tmp_path / "chips"))}
    first, second = "z19_309606_261636__OAM-1238424-1046544-21.png", "z19_309606_261636__OAM-1238425-1046544-21.png"
    assert sorted(examples) == [first, second]  # both chips in one zoom-19 block: one place
    image, mask, ids = examples[first]
    assert image.shape == (256, 256, 3) and mask.shape == ids.shape == (256, 256, 1)
    assert (mask[:64, :64] == NODATA_LABEL).all() and (ids[:64, :64] == NODATA_ID).all() and not image[:64, :64].any()
    assert (mask == 1).sum() == 2 * 40 * 40 and set(np.unique(ids[100:140, 100:180])) == {1, 2}
    assert (ids[100:140, 100:140] == 1).all() and (ids[100:140, 140:180] == 2).all()
    assert not (examples[second][1] == 1).any()  # the second chip holds no building
    said = capsys.readouterr().out
    assert (
        "1 chip(s) hold another format than their suffix says" in said and "OAM-1238425-1046544-21.png (JPEG)" in said
    )


def test_nodata_pixels_reach_neither_the_loss_nor_the_scores():
    import tensorflow as tf

    from data.pipeline import train_dataset
    from data.targets import NODATA_LABEL
    from inference.evaluation import scene_scores

    mask = np.zeros((64, 64, 1), np.uint8)
    mask[10:30, 10:30] = 1
    mask[:, 32:] = NODATA_LABEL  # the right half holds no data
    example = {
        "image": tf.io.encode_png(tf.fill((64, 64, 3), tf.constant(100, tf.uint8))),
        "mask": tf.io.encode_png(mask),
    }
    batches = train_dataset(tf.data.Dataset.from_tensors(example), size=64, batch_size=1, augment_data=False,
                            crops_per_image=1, nodata=True)  # fmt: skip
    _, targets, weights = next(iter(batches))
    assert weights.shape == (1, 64, 64, 1) and float(tf.reduce_sum(weights)) == 64 * 32
    assert float(tf.reduce_sum(targets)) == 400 and float(tf.reduce_max(targets)) == 1.0  # no-data is not building
    # a scene half no-data scores like its valid half
    truth = mask[..., 0] == 1
    predicted = np.zeros((64, 64), bool)
    predicted[12:30, 10:30] = predicted[40:60, 40:60] = True  # the second block lies in the no-data half
    whole = scene_scores("a", truth, predicted, valid=mask[..., 0] != NODATA_LABEL)
    half = scene_scores("a", truth[:, :32], predicted[:, :32])
    for key in ("tp", "fp", "fn", "building_tp", "building_fp", "building_fn", "pixels", "iou"):
        assert whole[key] == half[key], key


def test_true_buildings_are_counted_not_parts_of_the_mask():
    from inference.evaluation import scene_scores

    ids = np.zeros((32, 32), np.uint16)
    ids[4:12, 4:10], ids[4:12, 10:16], ids[4:12, 16:22] = 1, 2, 3  # three touching buildings: one part of the mask
    found = np.where(ids > 0, ids + 4, 0).astype(np.int32)  # separated as they are
    by_polygons = scene_scores("a", ids > 0, ids > 0, buildings=found, true_buildings=ids)
    by_mask = scene_scores("a", ids > 0, ids > 0, buildings=found)
    assert (by_polygons["building_tp"], by_polygons["building_fp"], by_polygons["building_fn"]) == (3, 0, 0)
    assert (by_mask["building_tp"], by_mask["building_fp"], by_mask["building_fn"]) == (0, 3, 1)  # IoU 1/3 each


UTM, UTM_GRID = "EPSG:32636", from_origin(452_000, 35_000, 0.5, 0.5)  # Kampala's UTM zone, 0.5 m pixels


def _utm_scene(path, width, height):
    """A flat grey 3-band GeoTIFF on UTM_GRID."""
    import rasterio

    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8", crs=UTM,
                       transform=UTM_GRID) as scene:  # fmt: skip
        scene.write(np.full((3, height, width), 120, np.uint8))


def test_scene_windows_carry_the_reprojected_polygons_and_a_file_overlapping_no_scene_is_refused(tmp_path):
    from pyogrio.raw import write

    from data.buildings.polygon_sources import find_layout, scene_examples

    folder = tmp_path / "scenes"
    folder.mkdir()
    utm = UTM
    _utm_scene(folder / "site.tif", 48, 40)
    across = shapely.box(452_008, 34_990, 452_016, 34_996)  # columns 16-31, rows 8-19: across the edge at 24
    lonlat = reproject(np.array([across], dtype=object), utm, "EPSG:4326")
    write(str(folder / "roofs.gpkg"), geometry=shapely.to_wkb(lonlat), field_data=[], fields=[],
          geometry_type="Polygon", crs="EPSG:4326", driver="GPKG")  # fmt: skip
    assert find_layout(tmp_path) == ("scenes", folder)
    windows = {name: (mask, ids) for name, _, mask, ids in scene_examples(folder, window=24)}
    assert sorted(windows) == ["site__r0_c0.png", "site__r0_c24.png", "site__r24_c0.png", "site__r24_c24.png"]
    whole = np.block([[windows["site__r0_c0.png"][1][..., 0], windows["site__r0_c24.png"][1][..., 0]],
                      [windows["site__r24_c0.png"][1][..., 0], windows["site__r24_c24.png"][1][..., 0]]])  # fmt: skip
    expected = np.zeros((40, 48), np.uint16)
    expected[8:20, 16:32] = 1
    np.testing.assert_array_equal(whole, expected)
    far = reproject(np.array([shapely.box(500_000, 34_990, 500_010, 34_996)], dtype=object), utm, "EPSG:4326")
    write(str(folder / "elsewhere.gpkg"), geometry=shapely.to_wkb(far), field_data=[], fields=[],
          geometry_type="Polygon", crs="EPSG:4326", driver="GPKG")  # fmt: skip
    with pytest.raises(ValueError, match="elsewhere.gpkg: overlaps no scene"):
        next(scene_examples(folder, window=24))  # before any window is read


def test_predict_scores_a_scene_against_a_vector_file_of_true_buildings(tmp_path, capsys):
    from pyogrio.raw import write

    import predict
    from models import create_model

    model = create_model("fcn8", "resnet18", input_shape=(None, None, 3))  # calls every pixel a building
    for layer in model.layers:
        if layer.name.startswith("fcn8_score"):
            kernel, bias = layer.get_weights()
            layer.set_weights([np.zeros_like(kernel), np.full_like(bias, 3.0)])
    model.save(tmp_path / "model.keras")
    scenes = tmp_path / "src"
    scenes.mkdir()
    utm = UTM
    _utm_scene(scenes / "site.tif", 64, 48)
    roofs = [shapely.box(452_002, 34_990, 452_006, 34_994), shapely.box(452_006, 34_990, 452_010, 34_994)]
    lonlat = reproject(np.array(roofs, dtype=object), utm, "EPSG:4326")  # two touching roofs of 8 x 8 pixels
    write(str(tmp_path / "roofs.geojson"), geometry=shapely.to_wkb(lonlat), field_data=[], fields=[],
          geometry_type="Polygon", crs="EPSG:4326", driver="GeoJSON")  # fmt: skip
    labels = str(tmp_path / "roofs.geojson")
    out = predict.main(["--model", str(tmp_path / "model.keras"), str(scenes), "--labels", labels,
                        "--out", str(tmp_path / "o"), "--precision", "float32"])  # fmt: skip
    scene = json.loads((out / "metrics.json").read_text())["scenes"][0]
    assert scene["tp"] == 128 and scene["fp"] == 64 * 48 - 128 and scene["fn"] == 0
    assert (scene["building_tp"], scene["building_fn"], scene["building_fp"]) == (0, 2, 1)  # two true buildings
    with pytest.raises(SystemExit):
        predict.main(["--model", str(tmp_path / "model.keras"), str(scenes), "--labels", str(tmp_path / "roofs.txt")])
    assert "roofs.txt: neither a folder of masks nor a vector file of building polygons" in capsys.readouterr().err


def test_the_default_group_rule_reads_the_place_of_polygon_examples():
    from data.groups import DEFAULT_GROUP_PATTERN, group_of

    assert group_of("z19_309606_261636__OAM-1238424-1046544-21.png") == "z19_309606_261636"
    assert group_of("site__r512_c0.png") == "site"
    assert group_of("dubai_image_part_003t5.jpg") == "dubai_t5"  # the Kaggle names as before
    assert group_of("site__r512_c0.png", r"^(.+)$") == "site__r512_c0"  # another rule is taken as given
    assert "__" not in DEFAULT_GROUP_PATTERN  # the saved configs of earlier runs name the same rule
