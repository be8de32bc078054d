import numpy as np

from transferlab.evaluation import (
    plot_confusion_matrix,
    plot_reliability_diagram,
    render_evaluation_html,
    render_evaluation_markdown,
    summarise_model,
    transfer_gain,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _probs(y, acc, seed, c=3):
    rng = np.random.default_rng(seed)
    pred = np.where(rng.random(y.size) < acc, y, (y + 1) % c)
    p = np.full((y.size, c), 0.1)
    p[np.arange(y.size), pred] = 0.8
    return p


def test_plots_write_pngs(tmp_path):
    y = np.random.default_rng(0).integers(0, 3, 60)
    p = _probs(y, 0.7, 1)
    cm_path = plot_confusion_matrix([[5, 1, 0], [0, 4, 2], [1, 0, 6]], ("a", "b", "c"), tmp_path / "x" / "cm.png")
    rel_path = plot_reliability_diagram(p, y, tmp_path / "rel.png")
    for path in (cm_path, rel_path):
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000


def _evaluation(tmp_path, chosen_acc):
    y = np.random.default_rng(0).integers(0, 3, 300)
    classes = ("zero", "one", "two")
    chosen = summarise_model(y, [_probs(y, chosen_acc, s) for s in (1, 2)], classes, role="chosen")
    base = summarise_model(y, [_probs(y, 0.7, s) for s in (3, 4)], classes, role="baseline")
    plot_confusion_matrix(chosen["confusion_matrix"], classes, tmp_path / "cm.png")
    chosen["plots"] = {"confusion_matrix": "cm.png"}
    gain = transfer_gain(y, chosen["predictions"], {"source-only": base["predictions"]}, chosen="dann", n_boot=300)
    return {
        "target": "usps",
        "test": {"n": 300},
        "seeds": [0, 1],
        "chosen": "dann",
        "models": {"dann": chosen, "source-only": base},
        "gain": gain,
        "audit": {"oracle": True, "best_candidate": "cdan", "best_accuracy": 0.95, "chosen": "dann",
                  "chosen_accuracy": chosen_acc, "regret": 0.95 - chosen_acc},
        "champion": {"moved": False, "reason": "the current champion scores higher on this test split.",
                     "version": None},
    }


SELECTION = {
    "method": "dann", "settings": {"trade_off": 1.0}, "mode": "rule",
    "candidates": [{"method": "dann", "score": 1.0, "eligible": True, "why": "unlabelled target"}],
    "reasons": ["The shift is significant (p = 0.001 < 0.05)."], "warnings": ["transfer may hurt"],
}


def test_markdown_page_has_numbers_verdict_reasons_and_links(tmp_path):
    ev = _evaluation(tmp_path, 0.95)
    md = render_evaluation_markdown(ev, SELECTION, {"MLflow run": "http://127.0.0.1:5000/#/runs/1"})
    assert md.startswith("# Transfer evaluation on usps")
    assert "SHIP: the adapted model beats the best baseline" in md
    acc = ev["models"]["dann"]["accuracy"]
    assert f"{100 * acc['mean']:.1f} ± {100 * acc['std']:.1f}" in md
    assert "The shift is significant (p = 0.001 < 0.05)." in md
    assert "**Warning:** transfer may hurt" in md
    assert "ORACLE AUDIT" in md and "![dann: confusion matrix](cm.png)" in md
    assert "[MLflow run](http://127.0.0.1:5000/#/runs/1)" in md
    assert "Champion alias did not move" in md


def test_negative_transfer_is_the_headline(tmp_path):
    md = render_evaluation_markdown(_evaluation(tmp_path, 0.4), SELECTION, {})
    assert "DO NOT SHIP: negative transfer" in md
    assert "Negative transfer: dann is significantly worse than source-only" in md


def test_html_is_self_contained_and_escaped(tmp_path):
    ev = _evaluation(tmp_path, 0.95)
    sel = dict(SELECTION, reasons=["<script>x</script>"])
    page = render_evaluation_html(ev, sel, {"run": "http://a/?b=1&c=2"}, base_dir=tmp_path)
    assert page.startswith("<!DOCTYPE html>")
    assert "data:image/png;base64," in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "positive-transfer" in page
    linked = render_evaluation_html(ev, sel, {}, base_dir=None)
    assert "src='cm.png'" in linked


def test_minimal_inputs_render():
    md = render_evaluation_markdown({"models": {}}, {"method": "source-only"}, {})
    assert "No baseline comparison available" in md and "`source-only`" in md


def test_the_summary_block_heads_both_pages_and_names_the_hold_out(tmp_path):
    import html

    from transferlab.evaluation.report import render_summary_markdown, summary_sections

    ev = _evaluation(tmp_path, 0.95)
    ev["promotion"] = {"share": 0.3, "promotion_n": 90, "report_n": 210, "verdict": "no-significant-difference",
                       "gain": {"estimate": 0.01, "ci": [-0.02, 0.04], "baseline": "source-only"},
                       "rule": "A version becomes champion only when ..."}
    ev["champion"] = {"moved": False, "version": "2", "reason": "its verdict on the promotion hold-out is "
                      "no-significant-difference, not a significant gain over source-only"}
    links = {"MLflow evaluate run": "http://127.0.0.1:5000/#/runs/1"}
    block = render_summary_markdown(ev, SELECTION, links)
    assert block.startswith("**SHIP: the adapted model beats the best baseline**")
    assert "over `source-only` (the best baseline) on the report part of the test split (210 samples)" in block
    assert "Method `dann` (trade_off=1.0), chosen in rule mode. Why: The shift is significant" in block
    assert ("Champion alias did not move (it stays on version 2): its verdict on the promotion hold-out is "
            "no-significant-difference") in block
    assert "90 of the 300 target test samples" in block and "verdict there: no-significant-difference" in block
    assert "[MLflow evaluate run](http://127.0.0.1:5000/#/runs/1)" in block
    md = render_evaluation_markdown(ev, SELECTION, links)
    assert block.strip() in md and md.count("[MLflow evaluate run]") == 1
    page = render_evaluation_html(ev, SELECTION, links)
    assert all(html.escape(sentence) in page for sentence in summary_sections(ev, SELECTION))


def test_one_seed_shows_no_spread_and_several_name_theirs(tmp_path):
    ev = _evaluation(tmp_path, 0.95)
    acc = ev["models"]["dann"]["accuracy"]
    assert "mean ± std over 2 seeds" in render_evaluation_markdown(ev, SELECTION, {})
    y = np.random.default_rng(0).integers(0, 3, 300)
    one = summarise_model(y, [_probs(y, 0.9, 1)], ("zero", "one", "two"), role="chosen")
    single = dict(ev, seeds=[0], models={"dann": one})
    for page in (render_evaluation_markdown(single, SELECTION, {}), render_evaluation_html(single, SELECTION, {})):
        assert "±" not in page  # "± 0.0" would claim a spread nobody measured
        assert f"{100 * one['accuracy']['mean']:.1f}" in page
    assert f"{100 * acc['mean']:.1f} ± {100 * acc['std']:.1f}" in render_evaluation_markdown(ev, SELECTION, {})


def test_the_candidate_score_column_says_what_the_score_is(tmp_path):
    ev = _evaluation(tmp_path, 0.95)
    md = render_evaluation_markdown(ev, SELECTION, {})  # a rule-mode selection.json from before score_meaning
    assert "| method | rule preference | eligible | why |" in md
    assert "Rule preference: 1 = chosen" in md and "not a measurement" in md
    trial = dict(SELECTION, mode="trial", score_meaning="trial score: minus the mean negative log-likelihood "
                                                          "of the held-out target labels; higher is better")
    md = render_evaluation_markdown(ev, trial, {})
    assert "| method | trial score | eligible | why |" in md
    assert "Trial score: minus the mean negative log-likelihood" in md
    assert "Trial score: minus the mean" in render_evaluation_html(ev, trial, {})


def test_an_ensembles_members_head_the_page_whether_trials_chose_it_or_params_forced_it():
    members = [{"method": "dann", "settings": {"trade_off": 0.3}}, {"method": "mcc", "settings": {}}]
    chosen = render_evaluation_markdown({"models": {}}, {"method": "ensemble", "settings": {"members": members}}, {})
    forced = render_evaluation_markdown({"models": {}}, {"method": "ensemble", "settings": {},
                                                         "method_params": {"members": members}}, {})
    for md in (chosen, forced):
        assert "Method `ensemble` (the mean of dann(trade_off=0.3) + mcc)" in md
