# A tool whose DockerRequirement is required: it runs in the site's container runtime (podman: --podman; Apptainer:
# --singularity, which converts the docker image), and a site without one refuses it as cwltool --no-container does
# (UnsupportedRequirement: cwl-runner's exit status 33).
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: "localhost/portaflow-base:bookworm"}
baseCommand: [sh, -c, 'if [ -e /run/.containerenv ]; then echo container; else echo host; fi']
inputs: {}
stdout: where.txt
outputs:
  where: {type: stdout}
