"""SCALE-Sim's own demand matrices, CALC read buffer and write buffer, driven without its memory
loop: the references the buffer replays of the analytic and physical count models are tested on."""

from __future__ import annotations

import random

import numpy as np
from scalesim.compute.operand_matrix import operand_matrix
from scalesim.compute.systolic_compute_is import systolic_compute_is
from scalesim.compute.systolic_compute_os import systolic_compute_os
from scalesim.compute.systolic_compute_ws import systolic_compute_ws
from scalesim.layout_utils import layouts
from scalesim.memory.read_buffer_estimate_bw import ReadBufferEstimateBw
from scalesim.memory.read_port import read_port
from scalesim.memory.write_buffer import write_buffer
from scalesim.memory.write_port import write_port
from scalesim.scale_config import scale_config
from scalesim.topology_utils import topologies

from ddi_energy.engines.scalesim_files import CONFIG_FILE, TOPOLOGY_FILE, write_inputs
from ddi_energy.hardware.config import HardwareConfig
from ddi_energy.workload.shapes import ConvShape


def scalesim_compute(shape: ConvShape, hw: HardwareConfig, tmp_path):
    """SCALE-Sim's own systolic_compute_* object with its demand matrices for one layer, loaded
    from the files our SCALE-Sim engine writes, without running its memory loop."""
    write_inputs(tmp_path, [("layer", shape)], hw)
    config = scale_config()
    config.read_conf_file(str(tmp_path / CONFIG_FILE))
    topology = topologies()
    topology.load_arrays(str(tmp_path / TOPOLOGY_FILE))
    topology.topo_calc_hyperparams()
    operands = operand_matrix()
    operands.set_params(config, topology, layouts(), 0)
    operands.create_operand_matrices()
    compute = {"os": systolic_compute_os, "ws": systolic_compute_ws, "is": systolic_compute_is}
    system = compute[hw.dataflow]()
    system.set_params(
        config_obj=config,
        ifmap_op_mat=operands.get_ifmap_matrix()[1],
        ofmap_op_mat=operands.get_ofmap_matrix()[1],
        filter_op_mat=operands.get_filter_matrix()[1],
    )
    system.create_demand_matrices()
    return system


def _set_up(buf, port, kb: int, **bandwidth):
    """A SCALE-Sim buffer of `kb` kB of 1-byte words, half of it active, as CALC mode sets it."""
    buf.set_params(
        backing_buf_obj=port, total_size_bytes=1024 * kb, word_size=1, active_buf_frac=0.5,
        **bandwidth,
    )  # fmt: skip
    return buf


def scalesim_read_buffer(demand: np.ndarray, kb: int) -> int:
    """DRAM reads of SCALE-Sim's CALC read buffer fed `demand` row by row (-1: no demand)."""
    buf = _set_up(ReadBufferEstimateBw(), read_port(), kb, backing_buf_default_bw=10)
    for i in range(demand.shape[0]):
        buf.service_reads(demand[i : i + 1], np.zeros((1, 1)) + i)
    buf.complete_all_prefetches()
    return buf.get_num_accesses()


def scalesim_write_buffer(row_counts: list[int], kb: int, bw: int, rng: random.Random):
    """(DRAM writes, stall cycles) of SCALE-Sim's write buffer, driven as service_memory_requests
    drives it: one row per cycle, -1 slots scattered, stalls delaying every later row."""
    buf = _set_up(write_buffer(), write_port(), kb, backing_buf_bw=bw)
    stall, addr, out = 0, 0, None
    for i, n in enumerate(row_counts):
        line = np.full((1, bw), -1)
        for slot in sorted(rng.sample(range(bw), n)):
            line[0, slot], addr = addr, addr + 1
        cycle = np.zeros((1, 1)) + i + stall
        out = buf.service_writes(line, cycle)
        stall += int(out[0][0] - cycle[0][0])
    buf.empty_all_buffers(out[0])
    return buf.get_num_accesses(), stall
