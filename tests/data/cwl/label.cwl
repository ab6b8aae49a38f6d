# An ExpressionTool: WORD-COUNT (needs InlineJavascriptRequirement: node runs it).
cwlVersion: v1.2
class: ExpressionTool
requirements:
  InlineJavascriptRequirement: {}
inputs:
  word: string
  count: int
outputs:
  label: string
expression: '${ return {"label": inputs.word + "-" + inputs.count}; }'
