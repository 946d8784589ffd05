"""Write the notebooks of the browser walk: for every exercise of every student notebook, a wrong, a right and a
skip variant, plus the student notebook itself and one stale-state notebook (lesson 2, Exercise 2).

A maintainer tool, not a test: run it with the course's Python (it needs nbformat), from the project folder:

    .venv/bin/python tests/browser/walk_variants.py /tmp/walk/notebooks

It reads notebooks/ and solutions/ each time, so the walk follows the notebooks as they are now. It writes
``<folder>/<lesson>/<variant>.ipynb`` and ``<folder>/plan.json``, the list the browser script walks through.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import textwrap
from pathlib import Path

import nbformat

PROJECT = Path(__file__).resolve().parents[2]
STUB_PATTERN = re.compile(r"^(?P<indent>[ \t]*)# YOUR CODE HERE\n(?P=indent)raise NotImplementedError\(.*\)$",
                          re.MULTILINE)
EXERCISE_NUMBER = re.compile(r'raise NotImplementedError\("Exercise (\d+):')
SOLUTION_BLOCK = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION$", re.MULTILINE | re.DOTALL)


def wrong_rare_classes(cell_source: str) -> list[str]:
    """Lesson 5, Exercise 1 with `<=` for `<`: as a variable (today) or as a function `classes_below` (planned)."""
    match = re.search(r"def classes_below\((.*?)\)", cell_source, re.DOTALL)
    if match is None:
        return ["counts = Counter(all_classes[sample.label] for sample in all_samples)\n"
                "too_small = sorted(name for name in all_classes if counts[name] <= MIN_IMAGES_PER_CLASS)"]
    names = [part.split(":")[0].split("=")[0].strip() for part in match.group(1).split(",") if part.strip()]
    samples, classes, minimum = names[:3]
    return [f"counts = Counter({classes}[sample.label] for sample in {samples})\n"
            f"return sorted(name for name in {classes} if counts[name] <= {minimum})"]


#: The typical mistake each check is meant to catch, one code block per stub of the exercise cell, by lesson and
#: the start of the exercise's title (the numbers change when exercises are added).
WRONG_ANSWERS = {
    ("01", "Count the test images with a sibling in training"):
        ["train_groups = {sample.group for sample in split.train}\n"  # counts tracks, not images
         "return len({sample.group for sample in split.test if sample.group in train_groups})"],
    ("01", "Same padding"):
        ["return (kernel_size - 1) // 2  # forgets the dilation"],
    ("01", "Conv block"):
        ["return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=same_padding(kernel_size)),\n"
         "        nn.BatchNorm2d(out_channels), nn.ReLU(), nn.MaxPool2d(2)]  # a list, not nn.Sequential"],
    ("01", "Assemble the CNN"):
        ["widths = [3, *channels]\n"  # no global pooling: the classifier's input size is wrong
         "self.features = nn.Sequential(*[conv_block(a, b) for a, b in zip(widths[:-1], widths[1:])])\n"
         "self.flatten = nn.Flatten()\n"
         "self.dropout = nn.Dropout(dropout)\n"
         "self.classifier = nn.Linear(widths[-1], num_classes)",
         "return self.classifier(self.dropout(self.flatten(self.features(images))))"],
    ("01", "Training step"):
        ["logits = model(images)\n"  # forgot optimizer.zero_grad()
         "loss = loss_fn(logits, labels)\n"
         "loss.backward()\n"
         "optimizer.step()\n"
         "return loss.item()"],
    ("02", "Freeze the backbone"):
        ["model.requires_grad = False  # sets an attribute, freezes nothing"],
    ("02", "Replace the head"):
        ["model.fc = nn.Linear(imagenet_head.in_features, num_classes)  # the ResNet name, not head_name"],
    ("02", "Compute the features of a split"):
        ["loader = loaders.make_loader(samples, eval_tf, batch_size=settings[\"batch_size\"], shuffle=True,\n"
         "                             device=env.device)  # shuffled: rows no longer match the samples\n"
         "key = features.feature_cache_key(settings[\"arch\"], info.weights, samples, eval_tf)\n"
         "return features.compute_features(extractor, loader, device=env.device, cache_dir=cache_dir,\n"
         "                                 cache_key=key)"],
    ("03", "Unfreeze the last blocks"):
        ["for parameter in fine_model.parameters():\n"  # the first blocks instead of the last
         "    parameter.requires_grad = False\n"
         "for block in models.body_blocks(fine_model)[:LAST_BLOCKS]:\n"
         "    block.requires_grad_(True)\n"
         "models.find_head(fine_model)[1].requires_grad_(True)"],
    ("03", "Two learning rates"):
        ["optimizer = torch.optim.AdamW([\n"  # the head in both groups
         "    {\"params\": [p for p in fine_model.parameters() if p.requires_grad], \"lr\": BODY_LR},\n"
         "    {\"params\": models.find_head(fine_model)[1].parameters(), \"lr\": HEAD_LR},\n"
         "], weight_decay=0.01)"],
    ("03", "Predict one image"):
        ["image = transform(image_files.load_rgb(path)).unsqueeze(0)\n"  # forgot model.eval()
         "device = next(model.parameters()).device\n"
         "with torch.no_grad():\n"
         "    logits = model(image.to(device))\n"
         "probabilities = torch.softmax(logits, dim=1)[0].cpu().numpy()\n"
         "return pd.Series(probabilities, index=list(classes)).sort_values(ascending=False)"],
    ("04", "Build the unknown class"):
        ["parts = {}\n"  # forgot to drop the held-out types from train and val
         "for part_name, samples in split_all.parts().items():\n"
         "    parts[part_name], unknown_classes = splits.with_unknown_class(samples, split_all.classes,\n"
         "                                                                  known=config.TARGET_SIGNS)\n"
         "unknown_split = splits.Split(unknown_classes, parts[\"train\"], parts[\"val\"], parts[\"test\"])"],
    ("04", "A model with a head for five classes"):
        ["model5 = models.replace_head(copy.deepcopy(backbone),\n"  # forgot to freeze the body
         "                             num_classes=len(unknown_split.classes)).to(env.device)"],
    ("04", "Class weights"):
        ["class_weights = counts / counts.sum()  # proportional to the count, not inversely"],
    ("04", "Maximum-softmax-probability scores and a threshold"):
        ["val_probabilities = torch.softmax(head4(val_x), dim=1)  # gradients on\n"
         "msp_val = evaluation.max_softmax_scores(val_probabilities)\n"
         "msp_threshold = evaluation.threshold_keeping(msp_val, keep=KEEP_KNOWN)"],
    ("05", "Find the classes with too few images"): wrong_rare_classes,
    ("05", "Build an MLP head"):
        ["mlp_head = models.replace_head(mlp_model, num_classes, hidden_units=(HIDDEN_UNITS,), dropout=0.2)"
         "  # the whole model"],
    ("05", "An optimizer with two learning rates"):
        ["optimizer = torch.optim.AdamW(fine_model.parameters(), lr=1e-3)  # one learning rate for all"],
}
STALE_CASE = ("02", "Replace the head")  # wrong answer, then the right one in the same kernel


def exercise_cells(notebook) -> dict[int, int]:
    """Exercise number -> index of the cell that holds its stub."""
    found = {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            numbers = {int(n) for n in EXERCISE_NUMBER.findall(cell.source)}
            if len(numbers) == 1:
                found[numbers.pop()] = index
    return found


def written_answer_cells(notebook) -> list[int]:
    """Markdown cells where the student writes an answer (nothing to run)."""
    return [index for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "markdown" and "*Your answer here.*" in cell.source]


def fill(source: str, blocks: list[str]) -> str:
    """Replace each `# YOUR CODE HERE` + `raise` stub by the next block, indented like the stub."""
    stubs = list(STUB_PATTERN.finditer(source))
    if len(stubs) != len(blocks):
        raise SystemExit(f"walk: {len(stubs)} stubs but {len(blocks)} answer blocks in:\n{source[:300]}")
    for stub, block in reversed(list(zip(stubs, blocks, strict=True))):
        indented = textwrap.indent(textwrap.dedent(block).strip("\n"), stub.group("indent"))
        source = source[:stub.start()] + indented + source[stub.end():]
    return source


def right_blocks(solution_source: str) -> list[str]:
    """The code between the BEGIN/END SOLUTION markers, without the `# Reference:` comment."""
    blocks = []
    for match in SOLUTION_BLOCK.finditer(solution_source):
        lines = [line for line in match.group(2).splitlines() if not line.strip().startswith("# Reference:")]
        blocks.append("\n".join(lines))
    return blocks


def skip_variant(source: str) -> str:
    """Apply the skip line the stub's message offers, where the message says to put it."""
    tree = ast.parse(source)
    raise_node = next(node for node in ast.walk(tree) if isinstance(node, ast.Raise))
    message = raise_node.exc.args[0].value
    skip_line = message.split("\n")[-1]
    lines = source.split("\n")
    if "whole def/class block" in message:
        block = next(node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
                     and node.lineno <= raise_node.lineno <= node.end_lineno)
        return "\n".join(lines[:block.lineno - 1] + [skip_line] + lines[block.end_lineno:])
    return "\n".join(lines[:raise_node.lineno - 1] + [skip_line] + lines[raise_node.end_lineno:])


def exercise_title(source: str) -> str:
    """The title in the cell's `# Exercise N: title` line."""
    return re.search(r"^# Exercise \d+: (.*)$", source, re.MULTILINE).group(1).strip()


def solution_cell(solution, student_source: str) -> str:
    """The source of the solutions' cell with the same exercise title (the numbers may differ while the
    solutions are edited and notebooks/ not yet rebuilt)."""
    title = exercise_title(student_source)
    for cell in solution.cells:
        if cell.cell_type == "code" and "BEGIN SOLUTION" in cell.source and re.search(
                rf"^# Exercise \d+: {re.escape(title)}$", cell.source, re.MULTILINE):
            return cell.source
    raise SystemExit(f"walk: no solution cell for the exercise {title!r}")


def variant(student, cells: dict[int, int], answers: dict[int, str]):
    """A copy of the student notebook with the given exercise cells replaced."""
    notebook = nbformat.from_dict(json.loads(json.dumps(student)))
    for number, source in answers.items():
        notebook.cells[cells[number]].source = source
    return notebook


def check_cell(notebook, index: int) -> int | None:
    """The cell that checks the exercise at `index`: itself, or the next code cell when it has no check."""
    if "checks.check" in notebook.cells[index].source:
        return None
    return next(i for i in range(index + 1, len(notebook.cells)) if notebook.cells[i].cell_type == "code")


def combined(student, cells: dict[int, int], versions: dict[int, dict[str, str]]):
    """One notebook per lesson: each stub replaced by three cells, wrong, right and skip (each wrong and right
    followed by a copy of the check cell when the check sits in the next cell). Returns it and its groups:
    [{"exercise": N, "kind": "wrong", "cells": [indices]}, ...] in order."""
    notebook = nbformat.from_dict(json.loads(json.dumps(student)))
    by_index = {index: number for number, index in cells.items()}
    new_cells, groups = [], []
    for index, cell in enumerate(student.cells):
        if index not in by_index:
            new_cells.append(cell)
            continue
        number = by_index[index]
        check = check_cell(student, index)
        for kind in ("wrong", "right", "skip"):
            group = {"exercise": number, "kind": kind, "cells": [len(new_cells)]}
            new_cells.append(nbformat.v4.new_code_cell(versions[number][kind]))
            if check is not None and kind != "skip":
                group["cells"].append(len(new_cells))
                new_cells.append(nbformat.v4.new_code_cell(student.cells[check].source))
            elif check is not None:
                group["cells"].append(len(new_cells) + check - index - 1)  # the original check cell
            groups.append(group)
    notebook.cells = new_cells
    return notebook, groups


def build(folder: Path) -> list[dict]:
    """Write every variant notebook under `folder`; return the plan, one entry per notebook to walk."""
    plan = []
    for student_path in sorted((PROJECT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        lesson = student_path.name[:2]
        student = nbformat.read(student_path, as_version=4)
        solution = nbformat.read(PROJECT / "solutions" / student_path.name, as_version=4)
        cells = exercise_cells(student)
        if not cells:  # a lesson without exercises: nothing to answer
            continue
        rights = {number: fill(student.cells[index].source,
                               right_blocks(solution_cell(solution, student.cells[index].source)))
                  for number, index in cells.items()}
        target = folder / student_path.stem
        target.mkdir(parents=True, exist_ok=True)
        common = {"lesson": lesson, "cells": cells, "written": written_answer_cells(student)}

        def write(name: str, notebook, target: Path = target, common: dict = common, **entry) -> None:
            path = target / f"{name}.ipynb"
            nbformat.write(notebook, path)
            plan.append({**common, **entry, "variant": name, "path": str(path.relative_to(folder.parent))})

        write("student", student, exercise=min(cells), kind="student")
        all_versions = {}
        for number, index in sorted(cells.items()):
            earlier = {n: rights[n] for n in cells if n < number}
            title = exercise_title(student.cells[index].source)
            wrong = next(answer for (where, start), answer in WRONG_ANSWERS.items()
                         if where == lesson and title.startswith(start))
            wrong_blocks = wrong(student.cells[index].source) if callable(wrong) else wrong
            versions = {"wrong": fill(student.cells[index].source, wrong_blocks), "right": rights[number],
                        "skip": skip_variant(student.cells[index].source)}
            all_versions[number] = versions
            for kind, source in versions.items():
                write(f"ex{number}_{kind}", variant(student, cells, {**earlier, number: source}),
                      exercise=number, kind=kind)
            if (lesson, title) == STALE_CASE:
                notebook = variant(student, cells, {**earlier, number: versions["wrong"]})
                notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(rights[number]))
                write(f"ex{number}_stale", notebook, exercise=number, kind="stale")
        notebook, groups = combined(student, cells, all_versions)
        write("combined", notebook, exercise=min(cells), kind="combined", groups=groups)
    (folder / "plan.json").write_text(json.dumps(plan, indent=1))
    return plan


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: walk_variants.py FOLDER (for example /tmp/walk/notebooks)")
    entries = build(Path(sys.argv[1]))
    print(f"walk: {len(entries)} notebooks written under {sys.argv[1]}")
