# The CWL features portaflow leaves to cwltool inside its tasks, in one Workflow (CWL v1.2): scatter (dotproduct,
# flat_crossproduct, nested_crossproduct), a subworkflow, `when` conditions with pickValue, valueFrom and JavaScript.
cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
  SubworkflowFeatureRequirement: {}
  InlineJavascriptRequirement: {}
  MultipleInputFeatureRequirement: {}
  StepInputExpressionRequirement: {}
inputs:
  words: string[]
  counts: int[]
  threshold: {type: int, default: 3}
outputs:
  files: {type: 'File[]', outputSource: repeat/out}
  flat: {type: 'string[]', outputSource: label_flat/label}
  nested: {type: {type: array, items: {type: array, items: string}}, outputSource: label_nested/label}
  shouted: {type: File, outputSource: sub/shouted}
  verdict:
    type: string
    outputSource: [big/says, small/says]
    pickValue: the_only_non_null
  total: {type: int, outputSource: sum/total}
steps:
  repeat:
    run: echo-times.cwl
    scatter: [word, count]
    scatterMethod: dotproduct
    in: {word: words, count: counts}
    out: [out]
  label_flat:
    run: label.cwl
    scatter: [word, count]
    scatterMethod: flat_crossproduct
    in: {word: words, count: counts}
    out: [label]
  label_nested:
    run: label.cwl
    scatter: [word, count]
    scatterMethod: nested_crossproduct
    in: {word: words, count: counts}
    out: [label]
  sub:
    run: concat-upper.cwl
    in: {files: repeat/out}
    out: [shouted]
  sum:
    run:
      class: ExpressionTool
      inputs: {values: 'int[]'}
      outputs: {total: int}
      expression: '${ return {"total": inputs.values.reduce(function(a, b) { return a + b; }, 0)}; }'
    in: {values: counts}
    out: [total]
  big:
    run: &say
      class: ExpressionTool
      inputs: {text: string}
      outputs: {says: string}
      expression: '$({"says": inputs.text})'
    when: $(inputs.total > inputs.threshold)
    in:
      total: sum/total
      threshold: threshold
      text: {valueFrom: 'many'}
    out: [says]
  small:
    run: *say
    when: $(inputs.total <= inputs.threshold)
    in:
      total: sum/total
      threshold: threshold
      text: {valueFrom: 'few'}
    out: [says]
