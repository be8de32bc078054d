"""The ship/no-ship page: evaluation results rendered as Markdown and as self-contained HTML.

``evaluation`` is a JSON-able dict (missing optional keys are tolerated and simply not shown)::

    {
      "target": "usps",                       # optional: the target domain's name
      "test": {"n": 2007, "split": "target test"},            # optional
      "seeds": [0, 1, 2],                     # optional
      "chosen": "dann",                       # key into "models"
      "models": {name: {"role": "chosen" | "baseline" | "candidate",
                        "accuracy" | "macro_f1" | "ece": {"mean", "std", "per_seed"},
                        "per_class_accuracy": {class: float | None},
                        "plots": {"confusion_matrix": "path.png", "reliability": "path.png"}}},
      "gain": transfer_gain(...)              # {"baseline", "estimate", "ci", "confidence", "verdict": {...}}
      "audit": selection_regret(...) | None,  # oracle audit, labelled as such
      "champion": {"moved": bool, "reason": str, "version": str | None} | None,
      "promotion": {"share", "promotion_n", "report_n", ...} | None,  # the promotion hold-out, when cut
    }

The numbers are those of the report part of the test split when a promotion hold-out was cut
(see :mod:`transferlab.evaluation.promotion`). The summary block at the top of the page
(:func:`render_summary_markdown`) is also what the Prefect run publishes as its artifact.

``selection`` is ``Selection.to_dict()`` and ``links`` maps a label (e.g. "MLflow run") to a URL.
Plot paths are written as given (relative to where the page is saved); the HTML version
embeds a PNG as a data URI when ``base_dir`` is given and the file exists there.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

_VERDICT_HEADLINE = {
    "positive-transfer": "SHIP: the adapted model beats the best baseline",
    "no-significant-difference": "HOLD: no significant difference from the best baseline",
    "negative-transfer": "DO NOT SHIP: negative transfer",
}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _mean_std(entry: dict | None, scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` over seeds; the mean alone for one seed, whose "± 0.0" would claim a spread
    that nobody measured."""
    if not entry:
        return "n/a"
    mean, std = entry.get("mean"), entry.get("std")
    if mean is None:
        return "n/a"
    if std is None or len(entry.get("per_seed") or [None, None]) < 2:
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def _model_header(evaluation: dict) -> list[str]:
    seeds = len(evaluation.get("seeds") or [])
    spread = f" (mean ± std over {seeds} seeds)" if seeds > 1 else ""
    return ["model", "role", f"test accuracy %{spread}", "macro-F1 %", "ECE"]


def _road_line(evaluation: dict) -> str | None:
    spaces = evaluation.get("label_spaces") or {}
    if not spaces.get("sentence"):
        return None
    road = "task transfer (new classes)" if evaluation.get("road") == "task-transfer" else "domain adaptation"
    return f"Road: {road}. {spaces['sentence']}" + _zero_shot_sentence(evaluation)


def _zero_shot_sentence(evaluation: dict) -> str:
    """' Zero-shot ...' with the chosen model's unseen-class (and GZSL) accuracy against chance, or ''."""
    z = evaluation.get("zero_shot")
    if not z:
        return ""
    m = z["models"][z["chosen"]]
    if m.get("unseen_accuracy") is None:
        return ""
    out = (f" Zero-shot through the attribute table {z['attribute_table']}: {z['chosen']} reaches "
           f"{100 * m['unseen_accuracy']:.1f} % on the unseen classes {', '.join(z['unseen_classes'])} "
           f"({z['metric']}; chance {100 * z['chance']:.1f} %)")
    if m.get("harmonic_mean") is not None:
        out += (f"; generalised zero-shot over every target class: seen {100 * m['gzsl_seen_accuracy']:.1f} %, "
                f"unseen {100 * m['gzsl_unseen_accuracy']:.1f} %, harmonic mean {100 * m['harmonic_mean']:.1f} %")
    return out + "."


def _headline(evaluation: dict) -> str:
    verdict = (evaluation.get("gain") or {}).get("verdict") or {}
    return _VERDICT_HEADLINE.get(verdict.get("label", ""), "No baseline comparison available")


def _model_rows(evaluation: dict) -> list[list[str]]:
    models = evaluation.get("models") or {}
    order = sorted(models, key=lambda k: ({"chosen": 0, "baseline": 1}.get(models[k].get("role"), 2), k))
    rows = []
    for name in order:
        m = models[name]
        rows.append([
            name + (" (chosen)" if name == evaluation.get("chosen") else ""),
            str(m.get("role", "")),
            _mean_std(m.get("accuracy")),
            _mean_std(m.get("macro_f1")),
            _mean_std(m.get("ece"), scale=1.0, digits=3),
        ])
    return rows


def _gain_lines(evaluation: dict) -> list[str]:
    gain = evaluation.get("gain")
    if not gain:
        return ["No baseline was evaluated, so no transfer gain can be stated."]
    ci = gain.get("ci") or [gain.get("ci_low"), gain.get("ci_high")]
    level = 100 * gain.get("confidence", 0.95)
    split = evaluation.get("promotion")
    on = f" on the report part of the test split ({split['report_n']} samples)" if split else ""
    lines = [
        f"Transfer gain over `{gain.get('baseline')}` (the best baseline){on}: "
        f"{100 * gain['estimate']:+.1f} points, {level:.0f}% paired-bootstrap CI "
        f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}] ({gain.get('n_boot', '?')} resamples, seed {gain.get('seed', '?')}).",
    ]
    verdict = gain.get("verdict") or {}
    if verdict.get("sentence"):
        lines.append(verdict["sentence"])
    return lines


def champion_sentence(evaluation: dict) -> str | None:
    """The champion decision and its reason, in the words every interface uses."""
    champ = evaluation.get("champion")
    if not champ:
        return None
    version = champ.get("version")
    if champ.get("moved"):
        state = f"moved to version {version}"
    else:
        state = "did not move" + (f" (it stays on version {version})" if version is not None else "")
    return f"Champion alias {state}: {champ.get('reason', '')}".strip().rstrip(".") + "."


def holdout_sentence(evaluation: dict) -> str | None:
    """Which part of the test split the numbers are on, and which part only the champion contest read."""
    split = evaluation.get("promotion")
    if not split:
        return None
    total = split["promotion_n"] + split["report_n"]
    gain = split.get("gain") or {}
    there = ""
    if gain.get("ci"):
        there = (f" (verdict there: {split.get('verdict')}, {100 * gain['estimate']:+.1f} points over "
                 f"`{gain.get('baseline')}`, CI [{100 * gain['ci'][0]:+.1f}, {100 * gain['ci'][1]:+.1f}])")
    rule = f" {split['rule']}" if split.get("rule") else ""
    return (f"Promotion hold-out: {split['promotion_n']} of the {total} target test samples "
            f"({100 * split['share']:.0f} %, drawn per class and seeded by the split's hash) are read only by the "
            f"champion contest{there}; the reported numbers are on the other {split['report_n']}.{rule}")


def _method_sentence(selection: dict) -> str:
    head = _selection_lines(selection)[0]
    reasons = list(selection.get("reasons") or [])
    return head + (f" Why: {reasons[0]}" if reasons else "")


def summary_sections(evaluation: dict, selection: dict) -> list[str]:
    """The summary's sentences, in order: verdict headline, gain over the named baseline with its
    CI and verdict, the method and why, the champion decision with its reason, the hold-out."""
    out = [_headline(evaluation)]
    out += _gain_lines(evaluation)
    if selection:
        out.append(_method_sentence(selection))
    for extra in (champion_sentence(evaluation), holdout_sentence(evaluation)):
        if extra:
            out.append(extra)
    return out


def render_summary_markdown(evaluation: dict, selection: dict, links: dict) -> str:
    """The evaluation page's summary block: the top of the report page and, word for word, the
    Prefect run's ``transfer-result`` artifact."""
    head, *rest = summary_sections(evaluation, selection)
    out = [f"**{head}**", ""] + [f"{line}\n" for line in rest]
    if links:
        out += [f"- [{label}]({url})" for label, url in links.items()]
    return "\n".join(out).rstrip() + "\n"


def _audit_lines(evaluation: dict) -> list[str]:
    audit = evaluation.get("audit")
    if not audit:
        return []
    lines = [
        "ORACLE AUDIT (uses target test labels; no decision used these numbers).",
        f"Best candidate on test: `{audit['best_candidate']}` at {_pct(audit['best_accuracy'])}%; "
        f"chosen `{audit['chosen']}` at {_pct(audit['chosen_accuracy'])}%; "
        f"selection regret {100 * audit['regret']:.1f} points.",
    ]
    return lines


def _per_class(evaluation: dict) -> tuple[list[str], list[list[str]]]:
    models = evaluation.get("models") or {}
    names = [n for n in models if models[n].get("per_class_accuracy")]
    if not names:
        return [], []
    classes = list(models[names[0]]["per_class_accuracy"])
    rows = [[c] + [_pct(models[n]["per_class_accuracy"].get(c)) for n in names] for c in classes]
    return ["class"] + names, rows


def _plots(evaluation: dict) -> list[tuple[str, str]]:
    out = []
    for name, m in (evaluation.get("models") or {}).items():
        for kind, path in (m.get("plots") or {}).items():
            out.append((f"{name}: {kind.replace('_', ' ')}", str(path)))
    return out


def _selection_lines(selection: dict) -> tuple[str, list[str], list[str]]:
    from transferlab.selection.result import members_text

    settings = selection.get("settings") or {}
    # A forced ensemble has no chosen settings: its members are params (method_params, as adapt reads them).
    members = settings.get("members") or (selection.get("method_params") or {}).get("members")
    if members:
        settings_text = "the mean of " + members_text(members)
    else:
        settings_text = ", ".join(f"{k}={v}" for k, v in settings.items()) or "defaults"
    head = (
        f"Method `{selection.get('method')}` ({settings_text}), chosen in {selection.get('mode', '?')} mode"
        + (f", decided by {selection['decided_by']}" if selection.get("decided_by") else "")
        + "."
    )
    return head, list(selection.get("warnings") or []), list(selection.get("reasons") or [])


def _candidate_rows(selection: dict) -> list[list[str]]:
    rows = []
    for c in selection.get("candidates") or []:
        score = c.get("score")
        rows.append([
            str(c.get("method")),
            "n/a" if score is None else f"{score:.4g}",
            "yes" if c.get("eligible") else "no",
            str(c.get("why", "")),
        ])
    return rows


def score_meaning(selection: dict) -> tuple[str, str]:
    """(column header, sentence under the table) saying what the candidates' ``score`` is, from
    selection.json's ``score_meaning`` (one written before it existed: from the mode)."""
    from transferlab.selection.result import RULE_SCORE

    meaning = selection.get("score_meaning")
    if not meaning:
        rules = selection.get("mode", "rule") == "rule" or str(selection.get("decided_by", "")).startswith("rules")
        meaning = RULE_SCORE if rules else "trial score: the number that ranked the trials; higher is better"
    column, _, explained = meaning.partition(": ")
    return column, f"{column[:1].upper()}{column[1:]}: {explained}."


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return lines


def render_summary_page(evaluation: dict, selection: dict, links: dict) -> str:
    """The page's title and summary block: the top of evaluation.md and the whole Prefect artifact."""
    target = evaluation.get("target")
    return (f"# Transfer evaluation{f' on {target}' if target else ''}\n\n"
            + render_summary_markdown(evaluation, selection, links))


def render_evaluation_markdown(evaluation: dict, selection: dict, links: dict) -> str:
    out = [render_summary_page(evaluation, selection, links).rstrip()]
    road = _road_line(evaluation)
    if road:
        out += ["", road]
    test = evaluation.get("test") or {}
    if test or evaluation.get("seeds"):
        split = evaluation.get("promotion")
        parts = f" ({split['report_n']} reported here, {split['promotion_n']} held out for promotion)" if split else ""
        out += ["", f"Held-out target test split: {test.get('n', '?')} samples{parts}; "
                    f"seeds: {', '.join(map(str, evaluation.get('seeds') or [])) or 'one run'}."]
    out += ["", "## Models on the target test split", ""] + _md_table(_model_header(evaluation), _model_rows(evaluation))
    head, warnings, reasons = _selection_lines(selection)
    out += ["", "## Why this method", "", head]
    if warnings:
        out += [""] + [f"> **Warning:** {w}" for w in warnings]
    if reasons:
        out += [""] + [f"- {r}" for r in reasons]
    cand = _candidate_rows(selection)
    if cand:
        column, meaning = score_meaning(selection)
        out += ["", "### Candidates considered", ""] + _md_table(["method", column, "eligible", "why"], cand)
        out += ["", meaning]
    audit = _audit_lines(evaluation)
    if audit:
        out += ["", "## Oracle audit", ""] + [f"> {line}" for line in audit]
    header, rows = _per_class(evaluation)
    if rows:
        out += ["", "## Per-class accuracy (%)", ""] + _md_table(header, rows)
    plots = _plots(evaluation)
    if plots:
        out += ["", "## Plots", ""] + [f"![{label}]({path})" for label, path in plots]
    return "\n".join(out) + "\n"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img_src(path: str, base_dir: Path | None) -> str:
    if base_dir is not None:
        file = Path(base_dir) / path
        if file.is_file():
            return "data:image/png;base64," + base64.b64encode(file.read_bytes()).decode("ascii")
    return html.escape(path)


_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3}.verdict{font-size:1.3rem;font-weight:bold;padding:.6rem;border-radius:.3rem}
.positive-transfer{background:#d9f2d9}.no-significant-difference{background:#fff3cd}
.negative-transfer{background:#f8d7da}.warning{background:#fff3cd;padding:.4rem}
.oracle{border-left:4px solid #999;padding-left:.6rem;color:#555}figure{display:inline-block;margin:.5rem}
img{max-width:26rem}"""


def render_evaluation_html(
    evaluation: dict, selection: dict, links: dict, *, base_dir: str | Path | None = None
) -> str:
    """A single self-contained HTML page (inline CSS; PNGs embedded when found under ``base_dir``)."""
    e = html.escape
    target = evaluation.get("target")
    label = ((evaluation.get("gain") or {}).get("verdict") or {}).get("label", "")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Transfer evaluation{e(f' on {target}' if target else '')}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Transfer evaluation{e(f' on {target}' if target else '')}</h1>",
    ]
    # The same sentences as the Markdown summary block (render_summary_markdown), as HTML.
    head, *summary = summary_sections(evaluation, selection)
    parts.append(f"<p class='verdict {e(label)}'>{e(head)}</p>")
    parts += [f"<p>{e(line)}</p>" for line in summary]
    if links:
        parts.append("<ul>" + "".join(f"<li><a href='{e(str(url))}'>{e(str(lbl))}</a></li>"
                                      for lbl, url in links.items()) + "</ul>")
    road = _road_line(evaluation)
    if road:
        parts.append(f"<p>{e(road)}</p>")
    parts += ["<h2>Models on the target test split</h2>", _html_table(_model_header(evaluation), _model_rows(evaluation))]
    head, warnings, reasons = _selection_lines(selection)
    parts += ["<h2>Why this method</h2>", f"<p>{e(head)}</p>"]
    parts += [f"<p class='warning'><b>Warning:</b> {e(w)}</p>" for w in warnings]
    if reasons:
        parts.append("<ul>" + "".join(f"<li>{e(r)}</li>" for r in reasons) + "</ul>")
    cand = _candidate_rows(selection)
    if cand:
        column, meaning = score_meaning(selection)
        parts += ["<h3>Candidates considered</h3>", _html_table(["method", column, "eligible", "why"], cand),
                  f"<p>{e(meaning)}</p>"]
    audit = _audit_lines(evaluation)
    if audit:
        parts += ["<h2>Oracle audit</h2>", "<div class='oracle'>"]
        parts += [f"<p>{e(line)}</p>" for line in audit] + ["</div>"]
    header, rows = _per_class(evaluation)
    if rows:
        parts += ["<h2>Per-class accuracy (%)</h2>", _html_table(header, rows)]
    plots = _plots(evaluation)
    if plots:
        parts.append("<h2>Plots</h2>")
        base = Path(base_dir) if base_dir is not None else None
        parts += [
            f"<figure><img alt='{e(lbl)}' src='{_img_src(path, base)}'><figcaption>{e(lbl)}</figcaption></figure>"
            for lbl, path in plots
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
