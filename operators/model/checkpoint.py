"""Load a Qwen3 / Qwen3-MoE safetensors checkpoint, checked in full against its config.json.

Reads `model.safetensors`, or the shards that `model.safetensors.index.json` names, with
`safetensors.safe_open`. Every name, shape and dtype is checked against the shapes the config
implies before a byte of weight is read, so a bad checkpoint raises `CheckpointError` naming the
file and tensor, and nothing is half-loaded.

`Checkpoint.tensors` always has this one layout, whatever form the files take (H hidden_size,
V vocab_size, Nq/Nkv attention/key-value heads, D head_dim, I intermediate_size, E num_experts,
M moe_intermediate_size; every matrix is [out_features, in_features] as nn.Linear keeps it):

    model.embed_tokens.weight                          [V, H]
    model.layers.{i}.input_layernorm.weight            [H]
    model.layers.{i}.self_attn.q_proj.weight           [Nq*D, H]
    model.layers.{i}.self_attn.k_proj.weight           [Nkv*D, H]
    model.layers.{i}.self_attn.v_proj.weight           [Nkv*D, H]
    model.layers.{i}.self_attn.o_proj.weight           [H, Nq*D]
    model.layers.{i}.self_attn.q_norm.weight           [D]
    model.layers.{i}.self_attn.k_norm.weight           [D]
    model.layers.{i}.post_attention_layernorm.weight   [H]
  a dense layer (every layer of Qwen3ForCausalLM; a MoE model's layers where layer_is_moe is false):
    model.layers.{i}.mlp.gate_proj.weight              [I, H]
    model.layers.{i}.mlp.up_proj.weight                [I, H]
    model.layers.{i}.mlp.down_proj.weight              [H, I]
  a sparse layer (ModelConfig.layer_is_moe(i)):
    model.layers.{i}.mlp.gate.weight                   [E, H]      the router
    model.layers.{i}.mlp.experts.gate_up_proj          [E, 2*M, H] rows [0, M) gate, [M, 2M) up
    model.layers.{i}.mlp.experts.down_proj             [E, H, M]
    model.norm.weight                                  [H]
    lm_head.weight                                     [V, H]      absent when tie_word_embeddings

The experts are stacked as transformers 5 keeps them in memory (and as the `moe_experts` operator
takes them), so `tensors` is a `Qwen3MoeForCausalLM.state_dict()` less the tied head. On disk,
transformers 5.24's `save_pretrained` writes them one per expert, as the published Qwen3 checkpoints
do: `model.layers.{i}.mlp.experts.{e}.{gate,up,down}_proj.weight` ([M, H], [M, H], [H, M]); with
`save_original_format=False` it writes the stacked form above. Both are read, per layer.
A tied checkpoint has no `lm_head.weight`; one that has it anyway must equal the embedding.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from safetensors import SafetensorError, safe_open

from operators.model.config import ModelConfig, read_config
from operators.model.errors import CheckpointError

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
LM_HEAD = "lm_head.weight"
EMBEDDING = "model.embed_tokens.weight"
FILE_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
PROBLEMS_SHOWN = 8


@dataclass
class Checkpoint:
    directory: Path
    config: ModelConfig
    tensors: dict[str, torch.Tensor]
    has_tokenizer: bool

    @property
    def lm_head(self) -> torch.Tensor:
        """The output projection [V, H]: the embedding when tied."""
        return self.tensors.get(LM_HEAD, self.tensors[EMBEDDING])


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of `Checkpoint.tensors` with its shape, in load order (see the module docstring)."""
    c = config
    h, d = c.hidden_size, c.head_dim
    shapes: dict[str, tuple[int, ...]] = {EMBEDDING: (c.vocab_size, h)}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}"
        shapes |= {
            f"{p}.input_layernorm.weight": (h,),
            f"{p}.self_attn.q_proj.weight": (c.num_attention_heads * d, h),
            f"{p}.self_attn.k_proj.weight": (c.num_key_value_heads * d, h),
            f"{p}.self_attn.v_proj.weight": (c.num_key_value_heads * d, h),
            f"{p}.self_attn.o_proj.weight": (h, c.num_attention_heads * d),
            f"{p}.self_attn.q_norm.weight": (d,),
            f"{p}.self_attn.k_norm.weight": (d,),
            f"{p}.post_attention_layernorm.weight": (h,),
        }
        if c.layer_is_moe(i):
            e, m = c.num_experts, c.moe_intermediate_size
            shapes |= {f"{p}.mlp.gate.weight": (e, h), f"{p}.mlp.experts.gate_up_proj": (e, 2 * m, h),
                       f"{p}.mlp.experts.down_proj": (e, h, m)}
        else:
            n = c.intermediate_size
            shapes |= {f"{p}.mlp.gate_proj.weight": (n, h), f"{p}.mlp.up_proj.weight": (n, h),
                       f"{p}.mlp.down_proj.weight": (h, n)}
    shapes["model.norm.weight"] = (h,)
    if not c.tie_word_embeddings:
        shapes[LM_HEAD] = (c.vocab_size, h)
    return shapes


def load_checkpoint(directory: str | Path, dtype: torch.dtype | None = None,
                    device: str | torch.device = "cpu") -> Checkpoint:
    """Read and check a checkpoint directory; `dtype` converts every tensor (None keeps the file's)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a directory")
    config = read_config(directory)
    if dtype is not None and dtype not in FILE_DTYPES.values():
        raise ValueError(f"dtype {dtype} is not one of {sorted(map(str, FILE_DTYPES.values()))}")
    files, index, weight_map = _weight_files(directory)
    with ExitStack() as stack:
        handles = {path: _open(stack, path, device) for path in files}
        found = _inventory(handles, index, weight_map)
        plan = _disk_shapes(config, found.keys())
        _check(config, plan, found, index or files[0], dtype)
        tensors = dict(_read(config, found, handles, dtype))
        _check_tied_head(config, found, tensors)
    return Checkpoint(directory, config, tensors, any((directory / n).is_file() for n in TOKENIZER_FILES))


def weights_present(directory: str | Path) -> bool:
    """Whether the weight files are all there (the single file, or the index and every shard it names)."""
    try:
        _weight_files(Path(directory))
    except CheckpointError:
        return False
    return True


# --- where the tensors are -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    path: Path
    shape: tuple[int, ...]
    dtype: str  # safetensors' name: F32, BF16, I64, ...


def _weight_files(directory: Path) -> tuple[list[Path], Path | None, dict[str, str] | None]:
    """The safetensors files to read, and the index that named them with its map (None for a single file)."""
    index = directory / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise CheckpointError(f"{index}: not a safetensors index with a 'weight_map' ({error!r})") from error
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index}: 'weight_map' must map tensor names to shard file names")
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            if Path(shard).name != shard:
                raise CheckpointError(f"{index}: shard {shard!r} is not a file name in the checkpoint directory")
            if not (directory / shard).is_file():
                raise CheckpointError(f"{index}: shard file {directory / shard} does not exist "
                                      f"(it holds {sum(v == shard for v in weight_map.values())} tensors, "
                                      f"e.g. {next(k for k, v in weight_map.items() if v == shard)!r})")
        return [directory / s for s in shards], index, weight_map
    single = directory / WEIGHTS_FILE
    if single.is_file():
        return [single], None, None
    others = sorted(p.name for p in directory.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
    raise CheckpointError(f"{directory}: no {WEIGHTS_FILE} and no {INDEX_FILE}"
                          + (f" (found {', '.join(others)}; only safetensors checkpoints are read)" if others else ""))


def _open(stack: ExitStack, path: Path, device: str | torch.device) -> Any:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # safetensors is given the GPU's index, "cuda:N"
        device = torch.device("cuda", torch.cuda.current_device())
    try:
        return stack.enter_context(safe_open(str(path), framework="pt", device=str(device)))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from error


def _inventory(handles: dict[Path, Any], index: Path | None, listed: dict[str, str] | None) -> dict[str, _Entry]:
    """Every tensor in the files, with where it is; a tensor in two files, or off the index, is an error."""
    found: dict[str, _Entry] = {}
    for path, handle in handles.items():
        try:
            for name in handle.keys():
                piece = handle.get_slice(name)
                if name in found:
                    raise CheckpointError(f"{path}: tensor {name!r} is also in {found[name].path}")
                if listed is not None and listed.get(name) != path.name:
                    raise CheckpointError(f"{path}: tensor {name!r} is not listed for this shard in {index} "
                                          f"(the index says {listed.get(name)!r})")
                found[name] = _Entry(path, tuple(piece.get_shape()), piece.get_dtype())
        except SafetensorError as error:
            raise CheckpointError(f"{path}: corrupt safetensors file ({error})") from error
    if listed is not None:
        for name, shard in listed.items():
            if name not in found:
                raise CheckpointError(f"{index}: lists tensor {name!r} in {shard}, which does not hold it")
    return found


def _experts_prefix(i: int) -> str:
    return f"model.layers.{i}.mlp.experts"


def _stacked_on_disk(i: int, names: Any) -> bool:
    p = _experts_prefix(i)
    return f"{p}.gate_up_proj" in names or f"{p}.down_proj" in names


def _disk_shapes(config: ModelConfig, names: Any) -> dict[str, tuple[int, ...]]:
    """The tensors the files must hold: the loaded layout, with each sparse layer's experts in the form found."""
    shapes = expected_shapes(config)
    for i in range(config.num_hidden_layers):
        if not config.layer_is_moe(i) or _stacked_on_disk(i, names):
            continue
        p, h, m = _experts_prefix(i), config.hidden_size, config.moe_intermediate_size
        del shapes[f"{p}.gate_up_proj"], shapes[f"{p}.down_proj"]
        for e in range(config.num_experts):
            shapes |= {f"{p}.{e}.gate_proj.weight": (m, h), f"{p}.{e}.up_proj.weight": (m, h),
                       f"{p}.{e}.down_proj.weight": (h, m)}
    return shapes


# --- the checks ---------------------------------------------------------------------------------------------------

def _check(config: ModelConfig, plan: dict[str, tuple[int, ...]], found: dict[str, _Entry], where: Path,
           dtype: torch.dtype | None) -> None:
    problems = []
    for name, shape in plan.items():
        if name not in found:
            problems.append(f"{where}: tensor {name!r} is missing (expected shape {shape})")
        elif problem := _mismatch(name, found[name], shape):
            problems.append(problem)
    # A tied head is optional; present, it is checked like the others (and against the embedding later).
    optional = {LM_HEAD: (config.vocab_size, config.hidden_size)} if config.tie_word_embeddings else {}
    for name, entry in found.items():
        if name in optional:
            problem = _mismatch(name, entry, optional[name])
            problems += [problem] if problem else []
        elif name not in plan:
            problems.append(f"{entry.path}: unexpected tensor {name!r} {entry.shape}, not part of a "
                            f"{config.architecture} with this config.json")
    if dtype is None and not problems:
        problems += _mixed_expert_dtypes(config, plan, found)
    if problems:
        more = len(problems) - PROBLEMS_SHOWN
        raise CheckpointError("\n".join(problems[:PROBLEMS_SHOWN] + ([f"... and {more} more"] if more > 0 else [])))


def _mismatch(name: str, entry: _Entry, shape: tuple[int, ...]) -> str | None:
    if entry.shape != shape:
        return f"{entry.path}: tensor {name!r} has shape {entry.shape}, expected {shape} from config.json"
    if entry.dtype not in FILE_DTYPES:
        return (f"{entry.path}: tensor {name!r} has dtype {entry.dtype}, not a float dtype "
                f"({', '.join(FILE_DTYPES)})")
    return None


def _mixed_expert_dtypes(config: ModelConfig, plan: dict[str, tuple[int, ...]],
                         found: dict[str, _Entry]) -> list[str]:
    """Per-expert tensors are stacked into one; without a target dtype they must share theirs."""
    problems = []
    for i in range(config.num_hidden_layers):
        prefix = _experts_prefix(i) + "."
        seen = {found[n].dtype: n for n in plan if n.startswith(prefix) and n.count(".") == 7}
        if len(seen) > 1:
            problems.append(f"{found[next(iter(seen.values()))].path}: layer {i}'s experts mix dtypes "
                            f"{sorted(seen)} (e.g. {sorted(seen.values())}); pass dtype= to load them")
    return problems


def _check_tied_head(config: ModelConfig, found: dict[str, _Entry], tensors: dict[str, torch.Tensor]) -> None:
    if not config.tie_word_embeddings or LM_HEAD not in found:
        return
    head, embedding = tensors.pop(LM_HEAD), tensors[EMBEDDING]
    if head.dtype != embedding.dtype or not torch.equal(head, embedding):
        raise CheckpointError(f"{found[LM_HEAD].path}: tensor {LM_HEAD!r} differs from {EMBEDDING!r} although "
                              "config.json sets tie_word_embeddings")


# --- reading ------------------------------------------------------------------------------------------------------

def _read(config: ModelConfig, found: dict[str, _Entry], handles: dict[Path, Any],
          dtype: torch.dtype | None) -> Iterator[tuple[str, torch.Tensor]]:
    def get(name: str) -> torch.Tensor:
        path = found[name].path
        try:
            tensor = handles[path].get_tensor(name)
        except SafetensorError as error:
            raise CheckpointError(f"{path}: tensor {name!r} cannot be read ({error})") from error
        return tensor if dtype is None else tensor.to(dtype)

    for name in expected_shapes(config):
        layer = _sparse_layer_of(name)
        if layer is None or _stacked_on_disk(layer, found):
            yield name, get(name)
        elif name.endswith("gate_up_proj"):
            yield name, _stack(config, layer, ("gate_proj", "up_proj"), found, get)
        else:
            yield name, _stack(config, layer, ("down_proj",), found, get)
    if config.tie_word_embeddings and LM_HEAD in found:
        yield LM_HEAD, get(LM_HEAD)


def _sparse_layer_of(name: str) -> int | None:
    parts = name.split(".")
    if len(parts) == 6 and parts[4] == "experts":  # model.layers.{i}.mlp.experts.{gate_up_proj,down_proj}
        return int(parts[2])
    return None


def _stack(config: ModelConfig, layer: int, parts: tuple[str, ...], found: dict[str, _Entry],
           get: Callable[[str], torch.Tensor]) -> torch.Tensor:
    """[E, len(parts) * rows, cols] from the per-expert matrices, filled in place: no second copy."""
    p = _experts_prefix(layer)
    rows, cols = found[f"{p}.0.{parts[0]}.weight"].shape
    out: torch.Tensor | None = None
    for e in range(config.num_experts):
        for k, part in enumerate(parts):
            matrix = get(f"{p}.{e}.{part}.weight")
            if out is None:
                out = torch.empty((config.num_experts, len(parts) * rows, cols), dtype=matrix.dtype,
                                  device=matrix.device)
            out[e, k * rows:(k + 1) * rows].copy_(matrix)
    assert out is not None
    return out
