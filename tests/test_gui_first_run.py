"""The window's first minutes: it says what it is doing while it starts, names its model without
contradiction with the model's measured figures, shows the same latency as the CLI, keeps its
labels apart and prints no repeated Qt warnings. Offscreen, the real engine on the demo input."""
import os
import re
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings  # noqa: E402

from realtime_tse.gui.app import SHIPPED_MODEL, MainWindow  # noqa: E402
from realtime_tse.gui.widgets import ProfilePlot  # noqa: E402

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="no shipped checkpoint")]
START_TIMEOUT_MS = 30000


def _window(qtbot, tmp_path, **kw):
    opened = []
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat),
                   source=("demo", None), output=None, recordings_dir=tmp_path / "rec",
                   open_url=opened.append, ask_open_file=lambda *a: "", **kw)
    w.opened_urls = opened
    qtbot.addWidget(w)
    return w


def test_the_window_says_what_it_is_doing_while_it_starts(qtbot, tmp_path):
    steps, ticks = [], []
    w = _window(qtbot, tmp_path)
    try:
        # connected after the window's own slot: sees what the window shows for each step
        w.host.progress.connect(lambda text: steps.append(
            (text.split()[0], w.st_busy.isVisible(), w.st_state.text() == text)))
        w.timer.timeout.connect(lambda: ticks.append(time.monotonic()))
        assert not w.host.busy  # the engine starts from the event loop, after the window shows
        w.show()
        qtbot.waitUntil(lambda: w.engine is not None or bool(w.messages), timeout=START_TIMEOUT_MS)
        assert w.engine is not None, w.messages
        qtbot.wait(200)
        assert not w.st_busy.isVisible() and w.st_state.text() == "running: demo input"
        assert steps == [("loading", True, True), ("opening", True, True),
                         ("starting", True, True)], steps
        # the Qt thread kept running its 25 Hz timer while the model loaded (a loaded 2-core
        # machine: gaps of a second are tolerated, a frozen window is not)
        assert len(ticks) > 3 and max(np.diff(ticks)) < 3.0
    finally:
        w.shutdown()


def test_model_box_names_the_file_and_network_with_measured_figures(qtbot, tmp_path):
    from realtime_tse.models.checkpoint import read_metadata
    from realtime_tse.model_card import MODEL_CARD, measured_line
    w = _window(qtbot, tmp_path)
    try:
        w.show()
        qtbot.waitUntil(lambda: w.model is not None, timeout=START_TIMEOUT_MS)
        cfg, prov = read_metadata(SHIPPED_MODEL)
        assert w.model_combo.currentText() == f"Shipped: {SHIPPED_MODEL.stem}"
        info = w.model_info.text()
        assert SHIPPED_MODEL.name in info and f"network {cfg.preset}" in info
        assert "lite-causal" not in info.replace(SHIPPED_MODEL.name, "")  # no second name
        figs = w.model_figures.text()
        assert measured_line(prov) in figs and "SI-SDRi +1.22 dB" in figs
        assert f'href="{MODEL_CARD}"' in figs
        w.model_figures.linkActivated.emit(MODEL_CARD)
        card = SHIPPED_MODEL.parents[2] / MODEL_CARD
        if card.is_file():
            assert w.opened_urls and w.opened_urls[-1].toLocalFile() == str(card)
        else:
            assert MODEL_CARD in w.messages[-1][1] and w.messages[-1][0] == "info"
    finally:
        w.shutdown()


def test_a_published_evaluation_shows_in_the_model_box(qtbot, tmp_path):
    """A checkpoint carrying ``provenance["evaluation"]`` (as scripts/publish_model.py --eval
    writes it) shows its figures, the entry named by ``"model"``, the swap share included."""
    from realtime_tse.models.checkpoint import load_checkpoint, save_checkpoint
    net, meta = load_checkpoint(SHIPPED_MODEL)
    ev = {"scenario": "d1", "mixtures_per_repeat": 50, "repeats": 2, "clip_s": 4.0,
          "model": "mine",
          "models": {"other": {"mean": {"si_sdri_single": -1.0, "absence_level_db": -3.0}},
                     "mine": {"mean": {"si_sdri_single": 3.25, "absence_level_db": -20.04},
                              "swap": {"right_in_both": 0.75}}}}
    path = tmp_path / "published.safetensors"
    save_checkpoint(path, net, {**meta["provenance"], "evaluation": ev})
    w = _window(qtbot, tmp_path, model_path=str(path))
    try:
        w.show()
        qtbot.waitUntil(lambda: w.model is not None, timeout=START_TIMEOUT_MS)
        figs = w.model_figures.text()
        assert "100 test mixtures of 4 s (D1 room" in figs
        assert "SI-SDRi +3.25 dB" in figs and "no one talks -20.0 dB" in figs
        assert "right talker in both swapped positions: 75 %" in figs
        assert w.model_combo.currentText() == "Own: published.safetensors"
    finally:
        w.shutdown()


def test_latency_in_the_window_is_the_cli_figure(qtbot, tmp_path, capsys):
    from realtime_tse.cli.main import main
    w = _window(qtbot, tmp_path, block_ms=64)
    try:
        w.show()
        qtbot.waitUntil(lambda: w.engine is not None and "algorithmic" in w.st_latency.text(),
                        timeout=START_TIMEOUT_MS)
        shown = re.search(r"\((\d+) algorithmic", w.st_latency.text()).group(1)
    finally:
        w.shutdown()
    import soundfile as sf
    from tests.rt_fixtures import demo_at
    wav = tmp_path / "in.wav"
    sf.write(wav, demo_at(16000, 1.0), 16000)
    assert main(["extract", str(wav), "-d", "1.0", "-o", str(tmp_path / "o.wav"), "--streaming",
                 "--block-ms", "64"]) == 0
    said = re.search(r"algorithmic latency (\d+) ms", capsys.readouterr().out).group(1)
    assert shown == said == "80"


def _rect(item):
    return item.mapRectToScene(item.boundingRect())


@pytest.mark.parametrize("query_m", [3.0, 2.2, 1.8])
def test_profile_labels_stay_apart_and_use_plain_words(qtbot, query_m):
    p = ProfilePlot(0.0, 5.0)
    qtbot.addWidget(p)
    p.resize(760, 220)
    p.show()
    d = np.linspace(0, 5, 11)
    p.set_profile(d, -20 + 18 * np.exp(-((d - 2.0) ** 2)), [2.0])
    p.set_query(query_m)
    qtbot.wait(100)
    label = p.query_line.label
    assert label.toPlainText() == f"listening at {query_m:.2f} m" and "d_q" not in label.toPlainText()
    assert p.getPlotItem().getAxis("left").labelText == "extracted level re input"
    (talker,) = p.peak_labels
    assert talker.toPlainText() == "talker 2.0 m"
    assert not _rect(label).intersects(_rect(talker)), (_rect(label), _rect(talker))


def test_scan_plot_labels_inside_the_axes_in_plain_words():
    from realtime_tse.cli.main import scan_figure
    from realtime_tse.scan.result import make_result
    d = np.linspace(0, 5, 21)
    res = make_result(d, -20 + 18 * np.exp(-((d - 1.5) ** 2)), -20.0, 10.0, 1.0)
    fig = scan_figure(res, "demo")
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_ylabel() == "extracted level re input (dB)"
    r = fig.canvas.get_renderer()
    box = ax.get_window_extent(r)
    assert res.talkers_m and len(ax.texts) == len(res.talkers_m)
    for t in ax.texts:
        e = t.get_window_extent(r)
        assert box.y0 <= e.y0 and e.y1 <= box.y1 and box.x0 <= e.x0 and e.x1 <= box.x1


def test_no_qt_warning_is_printed_while_the_window_runs(qtbot, qtlog, tmp_path):
    w = _window(qtbot, tmp_path)
    try:
        w.show()
        qtbot.waitUntil(lambda: w.engine is not None, timeout=START_TIMEOUT_MS)
        for text in ("Detected talkers: 1.5 m   (click one on the radar to listen to it)",
                     "No clear talker: no peak of the profile stands 3 dB above its median " * 2):
            w.talkers_label.setText(text)  # texts that change the layout's minimum size
            w.model_figures.setText(text)
            qtbot.wait(300)
        qtbot.wait(1500)
    finally:
        w.shutdown()
    msgs = [r.message for r in qtlog.records]
    assert not [m for m in msgs if "propagateSizeHints" in m], msgs
    assert len(msgs) == len(set(msgs)), msgs  # nothing printed over and over
