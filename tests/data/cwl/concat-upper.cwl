# A subworkflow: concatenate files, then upper-case the result (upper.cwl).
cwlVersion: v1.2
class: Workflow
inputs:
  files: File[]
outputs:
  shouted: {type: File, outputSource: shout/upper}
steps:
  concat:
    run:
      class: CommandLineTool
      baseCommand: cat
      inputs:
        files: {type: 'File[]', inputBinding: {position: 1}}
      stdout: all.txt
      outputs:
        joined: {type: stdout}
    in: {files: files}
    out: [joined]
  shout:
    run: upper.cwl
    in: {text: concat/joined}
    out: [upper]
