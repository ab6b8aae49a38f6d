# A CommandLineTool writing WORD COUNT times into WORD.txt (a glob output named by an expression).
cwlVersion: v1.2
class: CommandLineTool
requirements:
  InlineJavascriptRequirement: {}
  ShellCommandRequirement: {}
inputs:
  word: string
  count: int
arguments:
  - {valueFrom: 'yes $(inputs.word) | head -n $(inputs.count) > $(inputs.word).txt', shellQuote: false}
outputs:
  out:
    type: File
    outputBinding: {glob: $(inputs.word + ".txt")}
