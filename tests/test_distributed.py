"""course_utils.distributed and fit under DistributedDataParallel: samplers, errors, and 2 CPU processes (gloo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as multiprocessing
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import distributed, training

# ----------------------------------------------------------------------------------------------------------
# Samplers: every image to exactly one rank
# ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [0, 1, 5, 12, 13])
def test_shard_sampler_gives_each_image_to_exactly_one_rank(size: int, world: int) -> None:
    shards = [list(distributed.ShardSampler(size, num_replicas=world, rank_of_this=r)) for r in range(world)]
    assert sorted(index for shard in shards for index in shard) == list(range(size))
    assert [len(distributed.ShardSampler(size, num_replicas=world, rank_of_this=r)) for r in range(world)] == \
        [len(shard) for shard in shards]


@pytest.mark.parametrize("world", [2, 3])
def test_train_sampler_gives_each_image_to_one_rank_per_epoch_and_reshuffles(world: int) -> None:
    size = 12  # divisible by 2 and 3: no padding
    samplers = [distributed.train_sampler(size, seed=7, num_replicas=world, rank_of_this=r) for r in range(world)]
    orders = []
    for epoch in (1, 2):
        for sampler in samplers:
            sampler.set_epoch(epoch)
        shards = [list(sampler) for sampler in samplers]
        assert sorted(index for shard in shards for index in shard) == list(range(size))
        assert len({len(shard) for shard in shards}) == 1  # equal shards: DDP needs the same number of steps
        orders.append(shards)
    assert orders[0] != orders[1]  # set_epoch gives a new order


def test_train_sampler_pads_at_most_world_minus_one_repeats() -> None:
    size, world = 13, 4
    shards = [list(distributed.train_sampler(size, seed=0, num_replicas=world, rank_of_this=r)) for r in range(world)]
    everything = [index for shard in shards for index in shard]
    assert set(everything) == set(range(size))
    assert len(everything) - size == 3
    assert len({len(shard) for shard in shards}) == 1


def test_ranks_together_see_the_global_batches_of_one_process() -> None:
    size, global_batch, world = 16, 4, 2
    alone = list(distributed.train_sampler(size, seed=3, num_replicas=1, rank_of_this=0))
    shards = [list(distributed.train_sampler(size, seed=3, num_replicas=world, rank_of_this=r)) for r in range(world)]
    per_rank = global_batch // world
    for step in range(size // global_batch):
        together = {index for shard in shards for index in shard[step * per_rank:(step + 1) * per_rank]}
        assert together == set(alone[step * global_batch:(step + 1) * global_batch])


# ----------------------------------------------------------------------------------------------------------
# One process: every helper is a no-op; errors are one line
# ----------------------------------------------------------------------------------------------------------

def test_helpers_do_nothing_in_one_process() -> None:
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (0, 1, True)
    tensor = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum(tensor) is tensor and tensor.tolist() == [1.0, 2.0]
    model = nn.Linear(2, 2)
    assert distributed.unwrap(model) is model
    assert distributed.gather_to_main("x") == ["x"]
    distributed.check_on_every_rank(None)
    with pytest.raises(distributed.DistributedError, match="^cannot read$"):
        distributed.check_on_every_rank("cannot read")


def test_batch_that_does_not_divide_is_one_line() -> None:
    assert distributed.per_rank_batch_size(64, 4) == 16
    with pytest.raises(distributed.DistributedError) as caught:
        distributed.per_rank_batch_size(30, 4)
    message = str(caught.value)
    assert "\n" not in message and "30" in message and "--batch-size 28 or 32" in message


def test_missing_master_addr_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(distributed.DistributedError) as caught:
        distributed.start()
    assert "MASTER_ADDR" in str(caught.value) and "torchrun" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not distributed.is_distributed()


# ----------------------------------------------------------------------------------------------------------
# Two processes (gloo on the CPU) against one: fit with BatchNorm frozen gives the same model
# ----------------------------------------------------------------------------------------------------------

GLOBAL_BATCH, EPOCHS, SEED = 8, 3, 0


def small_model() -> nn.Module:
    """A tiny CNN with BatchNorm whose running statistics are not the defaults (so freezing them matters)."""
    torch.manual_seed(SEED)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 3))
    model[1].running_mean.uniform_(-0.5, 0.5)
    model[1].running_var.uniform_(0.5, 2.0)
    return model


def fixed_data() -> tuple[TensorDataset, TensorDataset]:
    generator = torch.Generator().manual_seed(1)
    parts = [TensorDataset(torch.randn(size, 3, 8, 8, generator=generator),
                           torch.randint(0, 3, (size,), generator=generator)) for size in (32, 11)]
    return parts[0], parts[1]


def train_with_fit(model: nn.Module, folder: Path | None) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """fit as course_tools.train uses it: distributed loaders, DDP when distributed, BatchNorm frozen."""
    train, val = fixed_data()
    train_loader = distributed.distributed_loader(train, global_batch_size=GLOBAL_BATCH, train=True, seed=SEED)
    val_loader = distributed.distributed_loader(val, global_batch_size=GLOBAL_BATCH, train=False)
    wrapped = nn.parallel.DistributedDataParallel(model) if distributed.is_distributed() else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = training.fit(wrapped, train_loader, val_loader, epochs=EPOCHS, optimizer=optimizer, batchnorm="frozen",
                           verbose=False, channels_last=False,
                           checkpoint_path=None if folder is None else folder / "last.pt")
    return {key: value.clone() for key, value in model.state_dict().items()}, history.to_dict(orient="records")


def _rank_worker(rank_number: int, port: int, folder: str) -> None:
    """One rank of the 2-process run: trains, saves its weights and history, checks the one-line agreement."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank_number),
                      LOCAL_RANK=str(rank_number), WORLD_SIZE="2")
    torch.set_num_threads(1)
    distributed.start("gloo", timeout_seconds=60)
    try:
        state, history = train_with_fit(small_model(), Path(folder))
        torch.save({"state": state, "history": history}, Path(folder) / f"rank{rank_number}.pt")
        try:
            distributed.check_on_every_rank("cannot read /data" if rank_number == 1 else None)
        except distributed.DistributedError as error:
            (Path(folder) / f"agreement{rank_number}.txt").write_text(str(error))
    finally:
        distributed.stop()


def test_two_processes_equal_one_process_with_batchnorm_frozen(tmp_path: Path) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    multiprocessing.spawn(_rank_worker, args=(distributed.free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    alone_state, alone_history = train_with_fit(small_model(), None)

    # the ranks' weights are identical, bit for bit
    assert ranks[0]["state"].keys() == ranks[1]["state"].keys() == alone_state.keys()
    for key in alone_state:
        assert torch.equal(ranks[0]["state"][key], ranks[1]["state"][key]), key
        # and equal to one process with the same global batch and seed, up to float rounding
        torch.testing.assert_close(ranks[0]["state"][key], alone_state[key], rtol=1e-4, atol=1e-5)
    # BatchNorm frozen: its running statistics did not move
    assert torch.equal(ranks[0]["state"]["1.running_mean"], small_model()[1].running_mean)
    # metrics are summed over the ranks: the same history as one process (seconds aside)
    for together, alone in zip(ranks[0]["history"], alone_history, strict=True):
        for column in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert together[column] == pytest.approx(alone[column], rel=1e-4, abs=1e-6), column
    # rank 0 alone wrote the checkpoint, with plain keys that load into the model in one process
    assert [path.name for path in tmp_path.glob("*.pt*") if "rank" not in path.name] == ["last.pt"]
    from course_utils.checkpoints import read_checkpoint

    saved = read_checkpoint(tmp_path / "last.pt")["model_state"]
    assert not any(key.startswith("module.") for key in saved)
    small_model().load_state_dict(saved)
    # a rank that cannot go on stops every rank with one line naming it
    for r in range(2):
        assert (tmp_path / f"agreement{r}.txt").read_text() == "rank 1: cannot read /data"


class RecordingSampler(torch.utils.data.Sampler[int]):
    """Indices in order; remembers every epoch number it was given."""

    def __init__(self, size: int) -> None:
        self.size, self.epochs = size, []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __iter__(self):
        return iter(range(self.size))

    def __len__(self) -> int:
        return self.size


def test_fit_sets_the_sampler_epoch_before_each_epoch() -> None:
    train, val = fixed_data()
    sampler = RecordingSampler(len(train))
    model = small_model()
    training.fit(model, DataLoader(train, batch_size=8, sampler=sampler), DataLoader(val, batch_size=8), epochs=2,
                 optimizer=torch.optim.SGD(model.parameters(), lr=0.1), verbose=False, first_epoch=3)
    assert sampler.epochs == [3, 4]


def test_training_loader_leaves_out_a_last_batch_of_one_image_but_keeps_a_short_split() -> None:
    images = TensorDataset(torch.zeros(9, 3, 4, 4), torch.zeros(9, dtype=torch.long))
    loader = distributed.distributed_loader(images, global_batch_size=4, train=True, seed=0)
    assert [len(labels) for _, labels in loader] == [4, 4]  # not [4, 4, 1]: BatchNorm cannot train on 1 image
    evaluation = distributed.distributed_loader(images, global_batch_size=4, train=False)
    assert [len(labels) for _, labels in evaluation] == [4, 4, 1]  # evaluation counts every image
    short = TensorDataset(torch.zeros(3, 3, 4, 4), torch.zeros(3, dtype=torch.long))
    assert [len(labels) for _, labels in distributed.distributed_loader(short, global_batch_size=4, train=True)] == [3]
