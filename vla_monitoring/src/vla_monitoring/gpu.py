"""GPU load, memory and temperature through torch.cuda, or a clear "no GPU": never an exception.

torch is imported only when an NVIDIA driver is present (`/proc/driver/nvidia/version`), so a
machine without a GPU never pays for loading it. torch.cuda answers utilisation, temperature and
used memory through NVML (the nvidia-ml-py package) when that is installed, without creating a
CUDA context; without NVML only the memory is known, from `mem_get_info` (which does create one).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Protocol

LOG = logging.getLogger(__name__)
NVIDIA_DRIVER = "/proc/driver/nvidia/version"
# What torch.cuda raises when NVML or the device cannot answer one reading.
_READ_ERRORS = (RuntimeError, OSError, AssertionError, ImportError, ValueError, AttributeError)


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    percent: float | None          # utilisation [%]; None when unknown
    memory_percent: float | None   # memory used [%]
    temperature_c: float | None


class GpuSource(Protocol):
    """Where GPU readings come from; `read()` never raises."""

    description: str

    def read(self) -> list[GpuReading]: ...


class NoGpu:
    description = "no GPU"

    def read(self) -> list[GpuReading]:
        return []


class TorchCudaGpu:
    """Every CUDA device through `cuda` (torch.cuda, or a stand-in with its functions in tests)."""

    def __init__(self, cuda: Any):
        self.cuda = cuda
        self.count = int(cuda.device_count())
        self.names = [str(cuda.get_device_name(i)) for i in range(self.count)]
        self.description = ", ".join(self.names) or "no GPU"

    def _value(self, fn_name: str, index: int) -> Any:
        fn = getattr(self.cuda, fn_name, None)
        if fn is None:
            return None
        try:
            return fn(index)
        except _READ_ERRORS as exc:
            LOG.debug("torch.cuda.%s(%d) unavailable: %s", fn_name, index, exc)
            return None

    def _memory_percent(self, index: int) -> float | None:
        used = self._value("device_memory_used", index)
        total = None
        props = self._value("get_device_properties", index)
        if props is not None:
            total = getattr(props, "total_memory", None)
        if used is not None and total:
            return 100.0 * float(used) / float(total)
        free_total = self._value("mem_get_info", index)
        if free_total is not None and free_total[1]:
            free, total = free_total
            return 100.0 * (1.0 - float(free) / float(total))
        return None

    def read(self) -> list[GpuReading]:
        out = []
        for i in range(self.count):
            percent = self._value("utilization", i)
            temperature = self._value("temperature", i)
            out.append(GpuReading(i, self.names[i], None if percent is None else float(percent),
                                  self._memory_percent(i), None if temperature is None else float(temperature)))
        return out


def detect_gpu(driver_file: str = NVIDIA_DRIVER) -> GpuSource:
    """TorchCudaGpu when an NVIDIA driver and a CUDA device are present, else NoGpu (the reason logged)."""
    if not os.path.exists(driver_file):
        return NoGpu()
    try:
        import torch
    except ImportError as exc:
        LOG.warning("NVIDIA driver present but torch is not importable (%s): no GPU readings", exc)
        return NoGpu()
    try:
        if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
            LOG.warning("NVIDIA driver present but torch.cuda sees no device: no GPU readings")
            return NoGpu()
        return TorchCudaGpu(torch.cuda)
    except _READ_ERRORS as exc:
        LOG.warning("torch.cuda failed (%s): no GPU readings", exc)
        return NoGpu()
