# An invalid document: 'baseCommand' misspelled, an output without a type.
cwlVersion: v1.2
class: CommandLineTool
basecommand: echo
inputs:
  message: string
outputs:
  out:
    outputBinding: {glob: out.txt}
