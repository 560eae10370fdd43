"""Compute pipelines built from the committed SPIR-V (shaders/*.spv), one per shader variant and
specialization, created on first use and kept for the backend's life."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from llmcore_vulkan.gpu import Gpu

SHADER_DIR = Path(__file__).parent / "shaders"
PUSH_CONSTANT_BYTES = 32  # every shader's parameter block fits; Vulkan guarantees 128

#: storage buffers each shader binds, by the shader name's prefix
BINDINGS = {
    "get_rows": 3, "mul_mat": 4, "quantize": 2, "binary": 3, "unary": 2, "glu": 3, "norm": 2,
    "rope": 3, "kv_store": 3, "attention": 6,
}


def binding_count(shader: str) -> int:
    return next(n for prefix, n in BINDINGS.items() if shader.startswith(prefix))


class Kernels:
    """Pipelines and their layouts for one logical device."""

    def __init__(self, gpu: Gpu) -> None:
        self.gpu = gpu
        self._set_layouts: dict[int, Any] = {}
        self._pipeline_layouts: dict[int, Any] = {}
        self._pipelines: dict[tuple[str, int], Any] = {}
        self._modules: dict[str, Any] = {}

    def set_layout(self, n_bindings: int) -> Any:
        if n_bindings not in self._set_layouts:
            vk = self.gpu.vk
            bindings = [vk.VkDescriptorSetLayoutBinding(binding=i, descriptorType=vk.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                                        descriptorCount=1, stageFlags=vk.VK_SHADER_STAGE_COMPUTE_BIT)
                        for i in range(n_bindings)]
            self._set_layouts[n_bindings] = vk.vkCreateDescriptorSetLayout(self.gpu.device, vk.VkDescriptorSetLayoutCreateInfo(
                bindingCount=n_bindings, pBindings=bindings), None)
        return self._set_layouts[n_bindings]

    def pipeline_layout(self, n_bindings: int) -> Any:
        if n_bindings not in self._pipeline_layouts:
            vk = self.gpu.vk
            push = vk.VkPushConstantRange(stageFlags=vk.VK_SHADER_STAGE_COMPUTE_BIT, offset=0, size=PUSH_CONSTANT_BYTES)
            self._pipeline_layouts[n_bindings] = vk.vkCreatePipelineLayout(self.gpu.device, vk.VkPipelineLayoutCreateInfo(
                setLayoutCount=1, pSetLayouts=[self.set_layout(n_bindings)], pushConstantRangeCount=1,
                pPushConstantRanges=[push]), None)
        return self._pipeline_layouts[n_bindings]

    def pipeline(self, shader: str, spec: tuple[int, ...] = ()) -> Any:
        """The pipeline of ``shader`` with specialization constants 0, 1... set to ``spec``."""
        key = (shader, spec)
        if key not in self._pipelines:
            vk = self.gpu.vk
            info = None
            if spec:
                data = struct.pack(f"<{len(spec)}I", *spec)
                entries = [vk.VkSpecializationMapEntry(constantID=i, offset=4 * i, size=4) for i in range(len(spec))]
                info = vk.VkSpecializationInfo(mapEntryCount=len(spec), pMapEntries=entries,
                                               dataSize=len(data), pData=vk.ffi.from_buffer(data))
            stage = vk.VkPipelineShaderStageCreateInfo(stage=vk.VK_SHADER_STAGE_COMPUTE_BIT, module=self._module(shader),
                                                       pName="main", pSpecializationInfo=info)
            create = vk.VkComputePipelineCreateInfo(stage=stage, layout=self.pipeline_layout(binding_count(shader)))
            self._pipelines[key] = vk.vkCreateComputePipelines(self.gpu.device, None, 1, [create], None)[0]
        return self._pipelines[key]

    def _module(self, shader: str) -> Any:
        if shader not in self._modules:
            vk = self.gpu.vk
            code = (SHADER_DIR / f"{shader}.spv").read_bytes()
            self._modules[shader] = vk.vkCreateShaderModule(self.gpu.device, vk.VkShaderModuleCreateInfo(
                codeSize=len(code), pCode=code), None)
        return self._modules[shader]

    def destroy(self) -> None:
        vk, device = self.gpu.vk, self.gpu.device
        for pipeline in self._pipelines.values():
            vk.vkDestroyPipeline(device, pipeline, None)
        for module in self._modules.values():
            vk.vkDestroyShaderModule(device, module, None)
        for layout in self._pipeline_layouts.values():
            vk.vkDestroyPipelineLayout(device, layout, None)
        for layout in self._set_layouts.values():
            vk.vkDestroyDescriptorSetLayout(device, layout, None)
        self._pipelines.clear()
        self._modules.clear()
        self._pipeline_layouts.clear()
        self._set_layouts.clear()
