#!/usr/bin/env cwl-runner
# A CommandLineTool (CWL v1.2): count the lines of a file (read on stdin: the count alone, no staged path in it);
# stdout captured, a glob output with loadContents and an outputEval.
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [wc, -l]
requirements:
  InlineJavascriptRequirement: {}
  ResourceRequirement: {coresMin: 1, ramMin: 128}
inputs:
  infile: File
stdin: $(inputs.infile.path)
stdout: count.txt
outputs:
  count:
    type: File
    outputBinding: {glob: count.txt}
  lines:
    type: int
    outputBinding:
      glob: count.txt
      loadContents: true
      outputEval: $(parseInt(self[0].contents.trim()))
