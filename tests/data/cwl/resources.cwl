# ResourceRequirement and cwltool's CUDARequirement become the task's request: the plan picks the partition.
cwlVersion: v1.2
class: Workflow
$namespaces: {cwltool: "http://commonwl.org/cwltool#"}
inputs: {}
outputs: {}
steps:
  small:
    run:
      class: CommandLineTool
      requirements:
        ResourceRequirement: {coresMin: 2, ramMin: 3000}
        ToolTimeLimit: {timelimit: 600}
      baseCommand: "true"
      inputs: {}
      outputs: {}
    in: {}
    out: []
  gpu:
    run:
      class: CommandLineTool
      requirements:
        cwltool:CUDARequirement: {cudaVersionMin: "11.0", cudaComputeCapability: "7.0", cudaDeviceCountMin: 1}
        ResourceRequirement: {coresMin: 4, ramMin: 8000}
      baseCommand: "true"
      inputs: {}
      outputs: {}
    in: {}
    out: []
