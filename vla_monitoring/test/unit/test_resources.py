"""Resource sampling on this machine (real psutil): sane values, no GPU as None/null, processes followed
without blocking, thresholds, the vla_resources form, and GPU readings through a torch.cuda stand-in."""

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import psutil
import pytest

from vla_monitoring.config import build_config
from vla_monitoring.gpu import NoGpu, TorchCudaGpu, detect_gpu
from vla_monitoring.resources import (
    NodeProcesses,
    ResourceConfig,
    ResourceSampler,
    assess,
    existing_path,
    is_local_uri,
    json_fields,
    local_addresses,
)
from vla_msgs import json_forms
from vla_msgs.waiting import wait_until


def spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_sample_is_sane_and_never_waits(tmp_path, monkeypatch):
    intervals = []
    real = psutil.cpu_percent

    def cpu_percent(interval=None, percpu=False):
        intervals.append(interval)
        return real(interval, percpu)
    monkeypatch.setattr(psutil, "cpu_percent", cpu_percent)
    sampler = ResourceSampler(build_config(ResourceConfig, {"disk_path": str(tmp_path / "not" / "yet")}), NoGpu())
    spin(0.05)
    s = sampler.sample()
    # The seed's cpu_percent(interval=1) slept a second per sample; None compares with the previous call.
    assert intervals and all(i is None for i in intervals)
    assert 0.0 <= s.cpu_percent <= 100.0
    assert len(s.cpu_percent_per_core) == os.cpu_count()
    assert all(0.0 <= v <= 100.0 for v in s.cpu_percent_per_core)
    assert 0.0 < s.memory_percent < 100.0 and 0.0 < s.memory_used_mb < s.memory_total_mb
    assert s.disk_path == str(tmp_path) and 0.0 < s.disk_percent <= 100.0 and s.disk_free_gb > 0.0
    assert len(s.load_average) == 3 and all(v >= 0.0 for v in s.load_average)
    assert all(isinstance(v, float) for v in s.temperatures_c.values())  # often none in a container
    assert s.gpus == [] and s.gpu_percent is None and s.gpu_memory_percent is None and s.gpu_temperature_c is None


def test_json_fields_fit_the_form_with_null_gpu():
    s = ResourceSampler(ResourceConfig(), NoGpu()).sample()
    doc = json_forms.RESOURCES.parse(json_forms.RESOURCES.build(timestamp=1.0, robot_id="r", **json_fields(s)))
    assert doc["gpu_percent"] is None and doc["gpu_memory_percent"] is None and doc["gpus"] == []
    assert doc["cpu_percent"] == s.cpu_percent and doc["nodes"] == {}


def test_processes_are_followed_by_pid_and_forgotten_when_they_end():
    procs = NodeProcesses()
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 30\n"
                              "while time.process_time() < end: pass"])
    try:
        procs.track({"/busy_node": child.pid, "/me": os.getpid(), "/gone": 2**22 + 7})
        assert procs.names == ["/busy_node", "/me"]  # a pid that does not exist is not followed
        burnt = psutil.Process(child.pid).cpu_times().user
        wait_until(lambda: psutil.Process(child.pid).cpu_times().user > burnt + 0.3, 20.0, "the child to burn CPU")
        sample = procs.sample()
        assert sample["/busy_node"].pid == child.pid
        assert sample["/busy_node"].cpu_percent > 20.0   # of one core, measured since track()
        assert sample["/me"].rss_mb > 10.0
    finally:
        child.kill()
        child.wait()
    assert "/busy_node" not in procs.sample()
    assert procs.names == ["/me"]
    procs.track({})
    assert procs.names == []


def test_thresholds():
    cfg = ResourceConfig()
    s = ResourceSampler(cfg, NoGpu()).sample()
    calm = build_config(ResourceConfig, {"cpu_threshold": 100.0, "memory_threshold": 100.0,
                                         "disk_threshold": 100.0})
    assert assess(s, calm) == []
    tight = build_config(ResourceConfig, {"memory_threshold": 1.0})
    assert assess(s, tight) == [f"memory {s.memory_percent:.0f} % above 1 %"]


class FakeCuda:
    """torch.cuda's functions as resource sampling uses them; NVML missing when `nvml` is False."""

    def __init__(self, nvml: bool):
        self.nvml = nvml

    def device_count(self):
        return 2

    def get_device_name(self, i):
        return f"Fake GPU {i}"

    def _need_nvml(self):
        if not self.nvml:
            raise ModuleNotFoundError("pynvml does not seem to be installed")

    def utilization(self, i):
        self._need_nvml()
        return [30, 90][i]

    def temperature(self, i):
        self._need_nvml()
        return [50, 71][i]

    def device_memory_used(self, i):
        self._need_nvml()
        return [1, 3][i] * 2**30

    def get_device_properties(self, i):
        return SimpleNamespace(total_memory=4 * 2**30)

    def mem_get_info(self, i):
        return (2**30, 4 * 2**30)


def test_gpu_readings_through_torch_cuda_and_the_thresholds():
    gpu = TorchCudaGpu(FakeCuda(nvml=True))
    readings = gpu.read()
    assert [(g.percent, g.memory_percent, g.temperature_c) for g in readings] == [(30.0, 25.0, 50.0),
                                                                                  (90.0, 75.0, 71.0)]
    s = ResourceSampler(ResourceConfig(), gpu).sample()
    assert (s.gpu_percent, s.gpu_memory_percent, s.gpu_temperature_c) == (90.0, 75.0, 71.0)
    over = assess(s, build_config(ResourceConfig, {"cpu_threshold": 100.0, "memory_threshold": 100.0,
                                                   "disk_threshold": 100.0}))
    assert over == ["GPU 90 % above 85 %"]
    assert json_fields(s)["gpus"][1] == {"index": 1, "name": "Fake GPU 1", "percent": 90.0,
                                         "memory_percent": 75.0, "temperature_c": 71.0}


def test_gpu_without_nvml_knows_only_memory():
    readings = TorchCudaGpu(FakeCuda(nvml=False)).read()
    assert [(g.percent, g.memory_percent, g.temperature_c) for g in readings] == [(None, 75.0, None)] * 2


def test_no_driver_means_no_gpu_and_no_torch(tmp_path):
    source = detect_gpu(str(tmp_path / "no_driver"))
    assert isinstance(source, NoGpu) and source.read() == [] and source.description == "no GPU"


def test_a_driver_without_a_device_is_no_gpu(tmp_path):
    driver = tmp_path / "version"
    driver.write_text("NVRM version: fake\n")
    pytest.importorskip("torch")  # in requirements.txt; the CPU build sees no CUDA device
    assert isinstance(detect_gpu(str(driver)), NoGpu)


def test_paths_and_local_uris(tmp_path):
    assert existing_path(str(tmp_path / "a" / "b")) == str(tmp_path)
    assert existing_path("~") == os.path.expanduser("~")
    addresses = local_addresses()
    assert is_local_uri("http://127.0.0.1:41234/", addresses)
    assert is_local_uri("http://localhost:1/", addresses)
    assert is_local_uri(f"http://{os.uname().nodename}:1/", addresses)
    assert not is_local_uri("http://robot-7.example.invalid:1/", addresses)
