"""vla_sim's side of the optimisation toolkit: observations recorded from the simulator, distillation over
rollouts, and the shipped fast variant's lineage back to the reference policy."""

import json

import numpy as np
import pytest

from vla_edge.encoders import SentenceTextEncoder
from vla_edge.optimize.lineage import OptimizeError, lineage_of
from vla_edge.optimize.prune import prune
from vla_edge.policy import load_policy
from vla_edge.spec import sha256_file
from vla_sim import resources
from vla_sim.distill import distill
from vla_sim.export import export
from vla_sim.instructions import seen_instructions, unseen_instructions
from vla_sim.observations import record
from vla_sim.policy import CHUNK_LENGTH, ENCODER_NAME, LANGUAGE_DIM
from vla_sim.world import TARGET_NAMES


def test_recorded_observations_have_the_model_shapes_and_expert_labels():
    arrays = record(episodes=1, first_seed=50_001, every=10)  # 50000 starts within reach
    images, language, actions = arrays["image"], arrays["language"], arrays["actions"]
    n = len(images)
    assert n >= 1 and images.shape == (n, 3, 96, 96) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert language.shape == (n, LANGUAGE_DIM) and np.allclose(np.linalg.norm(language, axis=1), 1.0, atol=1e-3)
    assert actions.shape == (n, CHUNK_LENGTH, 6) and np.all(actions[:, :, 2:5] == 0.0)
    assert np.any(actions[:, 0, 0] != 0.0)  # the expert drives
    # The paraphrase table: every training phrasing, none held out, and the frames' goal among them.
    seen, unseen = seen_instructions(), unseen_instructions()
    assert arrays["paraphrases"].shape == (sum(map(len, seen.values())), LANGUAGE_DIM)
    assert arrays["paraphrase_target"].tolist() == [TARGET_NAMES.index(t) for t in sorted(seen) for _ in seen[t]]
    encoder = SentenceTextEncoder(ENCODER_NAME)
    held_out = np.stack([encoder.encode(s) for phrasings in unseen.values() for s in phrasings])
    assert np.max(arrays["paraphrases"] @ held_out.T) < 0.9999  # no held-out phrasing's embedding
    assert arrays["target"].shape == (n,) and len(set(arrays["target"].tolist())) == 1  # one episode, one goal
    goal = int(arrays["target"][0])
    own = arrays["paraphrases"][arrays["paraphrase_target"] == goal]
    assert any(np.allclose(language[0], p, atol=1e-5) for p in own)


def test_distilled_student_is_smaller_and_names_the_teacher(tmp_path):
    teacher = resources.model_path()
    student = tmp_path / "student.pt"
    prune(teacher, student, "channels", 0.5, None, epochs=0)
    out = tmp_path / "distilled.pt"
    doc = distill(teacher, student, out, rounds=0, episodes=1, epochs=1, lr=1e-3)
    policy = load_policy(out, "cpu")
    assert policy.module.conv2.weight.shape[0] == 32  # the student's width, not the teacher's 64
    assert doc["parent"]["sha256"] == sha256_file(teacher) and doc["optimization"]["method"] == "distill"
    assert doc["optimization"]["rounds"][0]["frames"] > 0
    with pytest.raises(OptimizeError, match="exists"):
        distill(teacher, student, out, rounds=0, episodes=1, epochs=1, lr=1e-3)


# The shipped variants: file, format, the least speed-up at batch 1 its benchmark recorded, the method.
SHIPPED = [("reference_policy_fast.onnx", "onnx", 2.0, "onnx-static-int8"),
           ("reference_policy_pruned.pt", "torchscript", 1.2, "prune-channels"),
           ("reference_policy_distilled.pt", "torchscript", 1.2, "distill")]


@pytest.mark.parametrize("name,fmt,speedup,method", SHIPPED)
def test_shipped_variant_follows_back_to_the_reference_within_five_points(name, fmt, speedup, method):
    fast = resources.share_dir() / "models" / name
    chain = lineage_of(fast)
    assert [c["verified"] for c in chain] == [True, True]
    assert chain[-1]["sha256"] == sha256_file(resources.model_path())
    side = json.loads(fast.with_suffix(".json").read_text())
    assert side["format"] == fmt and side["sha256"] == sha256_file(fast)
    assert side["optimization"]["method"] == method
    evaluation = side["evaluation"]
    for key in ("success_seen", "success_unseen"):  # the aim: at most 5 points below the reference
        phrasing = "seen_phrasing" if key == "success_seen" else "unseen_paraphrases"
        assert evaluation[phrasing]["success_rate"] >= evaluation["reference_same_seeds"][key] - 0.05
    assert side["benchmark"]["speedup_batch1_p50"] >= speedup
    assert load_policy(fast, "cpu").spec.version == side["version"]


@pytest.mark.parametrize("mode", ["scripted", "traced"])
def test_scripted_and_traced_exports_agree_with_the_eager_network(tmp_path, mode):
    out = tmp_path / f"{mode}.pt"
    doc = export(resources.model_path(), out, mode)
    assert doc["optimization"]["max_abs_diff_to_eager"] <= 1e-5
    assert doc["optimization"]["measured"]["max_abs_diff"] <= 1e-5  # and with the shipped file
    assert load_policy(out, "cpu").forward_batch(np.zeros((3, 3, 96, 96), np.float32),
                                                  np.zeros((3, LANGUAGE_DIM), np.float32)).shape == (3, CHUNK_LENGTH, 6)
