"""The optimiser's state in a checkpoint: Adam's moments as safetensors tensors named by parameter
(:func:`optim_tensors`), its param_groups as JSON (:func:`optim_groups`), and back
(:func:`load_optim`)."""
from __future__ import annotations

import torch


def optim_tensors(opt: torch.optim.Optimizer, net) -> dict:
    """The optimiser's own ``state_dict()["state"]`` as safetensors tensors named by parameter:
    ``optim/<parameter name>/<key>`` (Adam: exp_avg, exp_avg_sq, step; a 0-d ``step`` is stored with
    shape [1]). Its ``param_groups`` go into the provenance (:func:`optim_groups`)."""
    sd = opt.state_dict()
    names = _optim_param_names(opt, net)
    out = {}
    for idx, st in sd["state"].items():
        for key, v in st.items():
            t = torch.as_tensor(v, dtype=torch.float32) if not torch.is_tensor(v) else v
            out[f"optim/{names[idx]}/{key}"] = t.reshape(1) if t.dim() == 0 else t
    return out


def optim_groups(opt: torch.optim.Optimizer, net) -> list[dict]:
    """``state_dict()["param_groups"]`` with parameter names instead of indices (JSON-able)."""
    names = _optim_param_names(opt, net)
    return [{**{k: v for k, v in g.items() if k != "params"}, "params": [names[i] for i in g["params"]]}
            for g in opt.state_dict()["param_groups"]]


def _optim_param_names(opt: torch.optim.Optimizer, net) -> dict[int, str]:
    """state_dict index -> parameter name (indices run over the groups' parameters in order)."""
    by_id = {id(p): n for n, p in net.named_parameters()}
    return dict(enumerate(by_id[id(p)] for g in opt.param_groups for p in g["params"]))


def load_optim(opt: torch.optim.Optimizer, net, tensors: dict, groups: list[dict] | None = None) -> None:
    """Restore the optimiser with ``opt.load_state_dict`` from :func:`optim_tensors` tensors (also the
    files written before param_groups were stored: ``optim/<param>/exp_avg|exp_avg_sq|step``) and,
    when given, the saved param_groups' settings (learning rate, betas, ...).

    Raises:
        ValueError: a tensor names a parameter the model does not have.
    """
    sd = opt.state_dict()
    index = {n: i for i, n in _optim_param_names(opt, net).items()}
    state: dict = {}
    for k, v in tensors.items():
        name, key = k[len("optim/"):].rsplit("/", 1)
        if name not in index:
            raise ValueError(f"optimiser state for an unknown parameter {name!r}")
        state.setdefault(index[name], {})[key] = v.reshape(()) if key == "step" else v
    for g, saved in zip(sd["param_groups"], groups or []):
        g.update({k: tuple(v) if isinstance(g.get(k), tuple) else v  # JSON made (b1, b2) a list
                  for k, v in saved.items() if k != "params"})
    opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})
