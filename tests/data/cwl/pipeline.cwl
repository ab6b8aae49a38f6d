# A three-step Workflow: make a text file, upper-case it, count its lines.
cwlVersion: v1.2
class: Workflow
requirements:
  InlineJavascriptRequirement: {}
inputs:
  message: string
  copies: {type: int, default: 3}
outputs:
  upper:
    type: File
    outputSource: shout/upper
  lines:
    type: int
    outputSource: count/lines
steps:
  make-text:
    run:
      class: CommandLineTool
      baseCommand: [bash, -c]
      arguments: ['yes "$0" | head -n "$1" > text.txt', $(inputs.message), $(inputs.copies)]
      inputs:
        message: string
        copies: int
      outputs:
        text: {type: File, outputBinding: {glob: text.txt}}
    in: {message: message, copies: copies}
    out: [text]
  shout:
    run: upper.cwl
    in: {text: make-text/text}
    out: [upper]
  count:
    run: wc-tool.cwl
    in: {infile: shout/upper}
    out: [lines, count]
