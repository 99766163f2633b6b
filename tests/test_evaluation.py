import json
import pickle
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdemo.cli import main
from clipdemo.evaluation import apply_label_overrides, from_class_folders, load_image_set
from clipdemo.imagefiles import safe_extract_zip
from clipdemo.errors import InputError
from clipdemo.evaluation import load_templates
from tests.processes import run_one_and_two



def write_folder(root: Path, classes=("cat", "dog", "bird"), per_class=3, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def write_cifar10(root: Path, n=20, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    data = rng.integers(0, 255, (n, 3 * 32 * 32), dtype=np.uint8)
    labels = [i % 10 for i in range(n)]
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names}, f)
    return folder, data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def test_cifar_archive_reads_images_labels_and_evaluates(studio, tmp_path):
    folder, pixels, labels = write_cifar10(tmp_path)
    image_set = load_image_set(tmp_path)
    assert image_set.labels[:3] == ["airplane", "automobile", "bird"]
    assert image_set.targets == labels
    assert (image_set.sources[3] == pixels[3]).all()
    result = studio.evaluate(image_set, "single", batch_size=8)
    assert result.logits.shape == (20, 10)
    # Independent check of the metrics from the logits themselves.
    assert result.top1 == np.mean(result.logits.argmax(1) == np.array(labels))
    top5 = np.argsort(-result.logits, 1)[:, :5]
    assert result.top5 == np.mean([labels[i] in top5[i] for i in range(20)])
    assert result.as_json()["logits_shape"] == "torch.Size([20, 10])"


def test_logits_equal_zero_shot_classify(studio, tmp_path):
    write_folder(tmp_path / "data")
    image_set = load_image_set(tmp_path / "data")
    result = studio.evaluate(image_set, "single", batch_size=4)
    probs = studio.classify([Image.open(p).convert("RGB") for p in image_set.sources], image_set.labels).images
    for row, cls in zip(result.logits, probs):
        softmax = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        by_label = {p.label: p.prob for p in cls.predictions}
        assert np.allclose(softmax, [by_label[label] for label in image_set.labels], atol=1e-5)


def test_unreadable_images_are_skipped_named_and_left_out(studio, tmp_path):
    clean = load_image_set(write_folder(tmp_path / "clean"))
    root = write_folder(tmp_path / "data")
    (root / "cat" / "0b.png").write_bytes(b"not a png")  # sorts between cat/0.png and cat/1.png
    (root / "dog" / "zz.jpg").write_bytes(Image.open(root / "dog" / "0.png").tobytes()[:100])
    image_set = load_image_set(root)
    assert len(image_set) == 11
    # In a DataLoader worker, as the CLI runs it: a raised error would arrive wrapped in a traceback.
    result = studio.evaluate(image_set, "single", batch_size=4, num_workers=1)
    assert result.skipped == ["cat/0b.png", "dog/zz.jpg"]
    assert any("Skipped 2 image(s) that could not be read" in n and "cat/0b.png" in n for n in result.notices)
    reference = studio.evaluate(clean, "single", batch_size=4)
    assert np.allclose(result.logits, reference.logits, atol=1e-5)  # the readable images, unchanged
    assert [image_set.names[i] for i in result.source_indices] == clean.names
    assert result.as_json()["n_images"] == 9 and result.as_json()["skipped_images"] == result.skipped

    for path in root.glob("*/*"):
        path.write_bytes(b"broken")
    with pytest.raises(InputError, match=r"None of the 11 images could be read \(the first: bird/0.png\)"):
        studio.evaluate(load_image_set(root), "single")


def test_label_map_classes_subset_and_limit(tmp_path):
    root = write_folder(tmp_path / "people", classes=("cai", "zhou", "li"))
    (root / "labels.json").write_text(json.dumps({"cai": "蔡徐坤", "zhou": "周淑怡", "li": "李佳琪"}, ensure_ascii=False))
    full = load_image_set(root)
    assert full.labels == ["蔡徐坤", "李佳琪", "周淑怡"]  # folders sorted: cai, li, zhou
    sub = load_image_set(root, classes=["蔡徐坤", "zhou"])
    assert sub.labels == ["蔡徐坤", "周淑怡"] and len(sub) == 6 and set(sub.targets) == {0, 1}
    assert len(load_image_set(root, limit=4)) == 4
    with pytest.raises(InputError, match="Unknown class"):
        load_image_set(root, classes=["nobody", "cai"])
    name, templates = load_templates("single", full.labels)
    assert templates == ["一张{}的照片。"]


def test_csv_and_zip_layouts(tmp_path):
    root = write_folder(tmp_path / "data")
    rows = ["path,label"] + [f"{c}/{i}.png,{c}" for c in ("cat", "dog") for i in range(3)]
    (root / "list.csv").write_text("\n".join(rows))
    from_csv = load_image_set(root / "list.csv")
    assert from_csv.labels == ["cat", "dog"] and len(from_csv) == 6
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in root.rglob("*.png"):
            zf.write(p, f"data/{p.relative_to(root)}")
    from_zip = load_image_set(archive, workdir=tmp_path / "unzipped")
    assert from_zip.class_names == ["bird", "cat", "dog"] and len(from_zip) == 9


def test_label_override_lines_relabel_the_named_folders(tmp_path):
    image_set = from_class_folders(write_folder(tmp_path / "data"))  # bird, cat, dog
    same = apply_label_overrides(image_set, "cat: 猫\n\n  dog :a photo: of a dog  \n")
    assert same is image_set and image_set.labels == ["bird", "猫", "a photo: of a dog"]
    assert image_set.class_names == ["bird", "cat", "dog"] and len(image_set) == 9
    assert apply_label_overrides(image_set, None).labels == ["bird", "猫", "a photo: of a dog"]
    assert apply_label_overrides(image_set, "  \n").labels == ["bird", "猫", "a photo: of a dog"]


def test_label_override_lines_refuse_bad_lines_and_unknown_folders(tmp_path):
    image_set = from_class_folders(write_folder(tmp_path / "data"))
    with pytest.raises(InputError) as bad:
        apply_label_overrides(image_set, "cat: 猫\n  dog 狗  ")
    assert str(bad.value) == "Write each label as 'folder: label' (got 'dog 狗')."
    with pytest.raises(InputError) as unknown:
        apply_label_overrides(image_set, "zebra: 斑马\nant: 蚂蚁\ncat: 猫")
    assert str(unknown.value) == "No class folder named 'ant' in the zip (folders: bird, cat, dog)."
    assert image_set.labels == ["bird", "cat", "dog"]  # a refused text changes nothing


@pytest.mark.parametrize("entry, message", [("/etc/evil.png", "outside"), ("../evil.png", "outside"),
                                            ("a/../../evil.png", "outside")])
def test_zip_slip_is_refused(tmp_path, entry, message):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(entry, b"x")
    with pytest.raises(InputError, match=message):
        safe_extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "evil.png").exists()


def test_zip_symlink_and_bombs_are_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("cat/link.png")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InputError, match="symbolic link"):
        safe_extract_zip(archive, tmp_path / "out")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cat/zeros.png", b"\0" * (20 * 2**20))
    with pytest.raises(InputError, match="zip bomb"):
        safe_extract_zip(bomb, tmp_path / "out2")
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(30):
            zf.writestr(f"cat/{i}.png", b"x")
    with pytest.raises(InputError, match="limit is 10"):
        safe_extract_zip(many, tmp_path / "out3", max_files=10)


def test_cli_eval_writes_json_markdown_and_confusion_png(tiny_clip_dir, tmp_path, capsys):
    root = write_folder(tmp_path / "data")
    out = tmp_path / "report"
    code = main(["eval", str(root), "--json", "--out", str(out), "--workers", "0", "--templates", "cifar",
                 "--clip-model", str(tiny_clip_dir)])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert {"n_images", "n_classes", "logits_shape", "top1", "top5", "per_class", "templates"} <= set(data)
    assert (data["n_images"], data["n_classes"], data["templates"], data["n_templates"]) == (9, 3, "cifar", 18)
    assert data["clip_model"] == str(tiny_clip_dir)
    assert data == json.loads((out / "eval.json").read_text())
    assert "top-1" in (out / "report.md").read_text() and (out / "confusion.png").stat().st_size > 1000


def linked_copy(root: Path, dest: Path) -> Path:
    """`cp -rs`: real folders whose files are symlinks, plus a symlinked class folder, a loop and dead ends."""
    subprocess.run(["cp", "-rs", str(root.resolve()), str(dest)], check=True)
    (dest / "fish").symlink_to((root / "bird").resolve(), target_is_directory=True)  # a symlinked class folder
    (dest / "cat" / "again").symlink_to(".", target_is_directory=True)  # a loop: cat/again/again/...
    (dest / "dog" / "null.png").symlink_to("/dev/null")  # not a regular file
    (dest / "dog" / "gone.png").symlink_to(dest / "missing.png")  # dangling
    return dest


def test_cli_eval_follows_symlinks_in_local_folders(tiny_clip_dir, tmp_path, capsys):
    linked = linked_copy(write_folder(tmp_path / "data"), tmp_path / "linked")
    code = main(["eval", str(linked), "--json", "--out", str(tmp_path / "report"), "--workers", "0",
                 "--clip-model", str(tiny_clip_dir)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert (data["n_images"], data["n_classes"]) == (12, 4) and not data["skipped_images"]
    image_set = load_image_set(linked)
    assert image_set.class_names == ["bird", "cat", "dog", "fish"]
    assert [image_set.targets.count(i) for i in range(4)] == [3, 3, 3, 3]  # the loop is walked once


def test_extracted_zips_never_follow_symlinks(tmp_path):
    linked = linked_copy(write_folder(tmp_path / "data"), tmp_path / "linked")
    with pytest.raises(InputError, match="No images found"):
        from_class_folders(linked, follow_symlinks=False)  # as the web UI reads an extracted upload
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for cls in ("cat", "dog"):
            zf.write(tmp_path / "data" / cls / "0.png", f"{cls}/0.png")
        info = zipfile.ZipInfo("cat/link.png")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, str((tmp_path / "data" / "bird" / "0.png").resolve()))
    with pytest.raises(InputError, match="symbolic link"):
        load_image_set(archive, workdir=tmp_path / "unzipped")
    assert not any(p.is_symlink() for p in (tmp_path / "unzipped").rglob("*"))


def test_cli_eval_bad_input(tiny_clip_dir, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing"), "--clip-model", str(tiny_clip_dir)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_accelerate_two_processes_equal_one(tiny_clip_dir, tmp_path):
    root = write_folder(tmp_path / "data", per_class=5)
    (root / "cat" / "broken.png").write_bytes(b"not a png")  # skipped in both runs, whichever process reads it
    # --probe and --ablate: the probe logits are gathered with the class logits, the series read off them
    common = ["-m", "clipdemo", "eval", str(root), "--json", "--workers", "0", "--batch-size", "4",
              "--clip-model", str(tiny_clip_dir), "--dtype", "fp32", "--probe", "furry, feathered", "--ablate"]
    single, double = run_one_and_two(common, tmp_path)
    assert "2 processes shared the 16 images" in double.stderr, double.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "eval.json").read_text())
    two = json.loads((tmp_path / "two" / "eval.json").read_text())
    assert one == two and one["n_images"] == 15 and one["skipped_images"] == ["cat/broken.png"]
    assert len(one["ablations"]) == 1 + 3 + 3 * 2 and [c["n_images"] for c in one["probes"]["classes"]] == [5, 5, 5]
    assert "Skipped 1 image(s) that could not be read" in single.stderr and "Traceback" not in single.stderr
