"""Score predicted scenes against label masks: per scene and overall (summed pixel counts)."""

from training.metrics import confusion_counts, scores_from_counts


def scene_scores(name, truth, predicted):
    """IoU / F1 / precision / recall of one scene's bool masks, with the counts behind them."""
    tp, fp, fn = confusion_counts(truth, predicted)
    return {"scene": name, **scores_from_counts(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn, "pixels": int(truth.size)}


def evaluation_report(rows, **meta):
    """Per-scene rows plus the overall scores of the summed counts (large scenes weigh more)."""
    tp, fp, fn = (sum(row[key] for row in rows) for key in ("tp", "fp", "fn"))
    overall = {**scores_from_counts(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn, "pixels": sum(row["pixels"] for row in rows)}
    return {**meta, "scenes": rows, "overall": overall}


def format_table(report):
    """A Markdown table of the report, overall last."""
    lines = ["| scene | IoU | F1 | precision | recall |", "|---|---|---|---|---|"]
    for row in report["scenes"] + [{**report["overall"], "scene": "overall"}]:
        lines.append(f"| {row['scene']} | {row['iou']:.3f} | {row['f1']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} |")
    return "\n".join(lines)
