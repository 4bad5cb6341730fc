"""The window's device lists: PortAudio devices (by name, the default first) for the source and
output combos, and a combo box that refreshes its list when it opens and replaces its device
entries keeping the current choice."""
from __future__ import annotations

import traceback

from PySide6.QtWidgets import QComboBox

__all__ = ["list_device_choices", "DeviceCombo"]


def list_device_choices(fresh: bool = False):
    """(inputs, outputs): lists of (label, device name for the engine), the system's default
    device first and marked "(default)". Devices are kept by name (an index changes when a device
    appears or goes). ``fresh``: list them from a new PortAudio in a child process, so that a
    microphone or sound server that appeared since start is offered (safe while audio runs).
    Never raises (no PortAudio: two empty lists)."""
    try:
        from realtime_tse.audio.devices import find_device, list_devices, list_devices_fresh
        devs = list_devices_fresh() if fresh else list_devices()
        if devs is None:  # the child did not answer: keep to what this process knows
            devs = list_devices()
    except Exception:  # no PortAudio, ...
        return [], []
    defaults = {}
    for kind in ("input", "output"):
        try:
            d = find_device(None, kind)
            defaults[kind] = d.name
        except Exception:
            defaults[kind] = None
    lists = {"input": [], "output": []}
    for d in devs or []:  # realtime_tse.audio.streams.DeviceInfo records
        label = d.name + (f" ({d.hostapi})" if d.hostapi else "")
        for kind, items in lists.items():
            if not d.supports(kind):
                continue
            if d.name == defaults[kind]:  # the engine finds a device by its exact name
                items.insert(0, (label + " (default)", d.name))
            else:
                items.append((label, d.name))
    return lists["input"], lists["output"]




class DeviceCombo(QComboBox):
    """A combo box that calls ``on_open()`` just before its list pops up (the device lists are
    refreshed then, so a device plugged in after start is offered)."""

    def __init__(self, on_open=None, parent=None):
        super().__init__(parent)
        self.on_open = on_open

    def showPopup(self):  # noqa: N802 (Qt's name)
        if self.on_open is not None:
            try:
                self.on_open()
            except Exception:  # noqa: BLE001  (a failed refresh must not block the list)
                traceback.print_exc()
        super().showPopup()

    def set_devices(self, devices, icon: str, current, at: int) -> None:
        """Replace the device entries by ``devices`` ((label, name) pairs, shown with ``icon``)
        from position ``at`` on, keeping the other entries and the ``current`` choice (item data;
        a chosen device that vanished stays listed, marked "(not found)"). Emits no signals."""
        self.blockSignals(True)
        try:
            for k in range(self.count() - 1, -1, -1):
                d = self.itemData(k)
                if d and d[0] == "device":
                    self.removeItem(k)
            names = [n for _lab, n in devices]
            entries = list(devices)
            if current and current[0] == "device" and current[1] not in names:
                entries.append((f"{current[1]} (not found)", current[1]))
            for j, (label, name) in enumerate(entries):
                self.insertItem(at + j, f"{icon} {label}", ("device", name))
            for k in range(self.count()):
                d = self.itemData(k)
                if current and d and d[0] == current[0] \
                        and (d[0] != "device" or d[1] == current[1]) \
                        and (d[0] not in ("file",) or d[1] == current[1]):
                    self.setCurrentIndex(k)
                    break
        finally:
            self.blockSignals(False)
