"""Would separation be kept? Building F1 with and without it, on the calibration images and the held-out places.

    python -m experiments.separation results/pretrained/dubai_t8/lite0stdsep_s0 ...   (run folders with model.keras)

For each run of a model with separation channels: its kept weights (model.keras, with their
calibrated threshold), the choice train.py makes on its first 16 training images
(``inference.heldout.choose_separation``: keep separation or not, and the separation channels'
threshold), and the held-out building F1 both ways: as the run's results.json has it, and with
``--rescore`` its held-out places scored again at the chosen threshold (runs trained before the
threshold was chosen cut at 0.5). Nothing is written.
"""

from experiments.predicted import run_name, runs_parser


def main(argv=None):
    from blocks.calibration import threshold_offset
    from data.splits import run_examples
    from inference.heldout import choose_separation, score_model
    from inference.loading import load_segmenter
    from models.segmenter import set_logit_offset
    from training.results import finished_results

    parser = runs_parser(__doc__)
    parser.add_argument("--rescore", action="store_true", help="score the held-out places at the chosen threshold")
    args = parser.parse_args(argv)
    print(
        "| run | threshold | training F1 separated | training F1 not | kept | held-out F1 separated | held-out F1 not |"
    )
    print("|---|---|---|---|---|---|---|")
    for run_dir in args.runs:
        results = finished_results(run_dir, "experiments.separation")
        _, train_examples, heldout_examples = run_examples(run_dir)
        model, fixed = load_segmenter(run_dir)
        building_offset = -float(model.get_layer("logits").offset[0])
        set_logit_offset(model, building_offset)  # choose from the channels as trained
        choice = choose_separation(model, train_examples, fixed)
        separated = results.get("heldout_separated_building_f1", results.get("heldout_building_f1"))
        plain = results.get("heldout_unseparated_building_f1")
        if args.rescore:
            set_logit_offset(model, building_offset, threshold_offset(choice["threshold"]))
            overall = score_model(model, heldout_examples, fixed, separate=True)["overall"]
            separated, plain = overall["building_f1"], overall["unseparated_building_f1"]
        print(
            f"| {run_name(run_dir)} | {choice['threshold']} | {choice['building_f1_separated']:.3f} | "
            f"{choice['building_f1_unseparated']:.3f} | {'yes' if choice['separate'] else 'no'} | "
            f"{separated:.3f} | {plain:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
