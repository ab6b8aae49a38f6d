# A ResourceRequirement no partition of a site satisfies: refused before anything is submitted.
cwlVersion: v1.2
class: CommandLineTool
requirements:
  ResourceRequirement: {coresMin: 1000}
baseCommand: "true"
inputs: {}
outputs: {}
