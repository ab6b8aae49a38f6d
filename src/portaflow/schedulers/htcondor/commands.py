"""HTCondor's documented submit commands, to check keys that its parser would accept anyway.

Why a list: `htcondor2.Submit` accepts any key (an unknown one is a submit *variable*, silently
unused), so a misspelt command such as `transfer_input_file` would be dropped without a word. Keys are
checked against this list; job attributes written `+Name` or `MY.Name` are always allowed.

Source: the `:subcom-def:` entries of HTCondor's manual page condor_submit, version 24.12.23
(the version of the `htcondor` bindings the Snakemake plugin pins, <25), at
https://github.com/htcondor/htcondor/blob/v24.12.23/docs/man-pages/condor_submit.rst
(220 entries; commands are case-insensitive).
"""

from __future__ import annotations

import re

DOCUMENTED_COMMANDS: frozenset[str] = frozenset(n.lower() for n in """
    WantNameTag accounting_group accounting_group_user allowed_execute_duration allowed_job_duration
    arc_application arc_data_staging arc_resources arc_rte arguments aws_access_key_id_file aws_region
    aws_secret_access_key_file azure_admin_key azure_admin_username azure_auth_file azure_image
    azure_location azure_size batch_extra_submit_args batch_name batch_project batch_queue batch_runtime
    checkpoint_destination checkpoint_exit_code cloud_label_names concurrency_limits concurrency_limits_expr
    container_image container_service_names container_target_dir copy_to_spool coresize cron_day_of_month
    cron_day_of_week cron_hour cron_minute cron_month cron_prep_time cron_window cuda_version dagman_log
    deferral_prep_time deferral_time deferral_window delegate_job_GSI_credentials_lifetime description
    docker_image docker_network_type docker_override_entrypoint docker_pull_policy dont_encrypt_input_files
    dont_encrypt_output_files ec2_access_key_id ec2_ami_id ec2_availability_zone ec2_block_device_mapping
    ec2_ebs_volumes ec2_elastic_ip ec2_iam_profile_arn ec2_iam_profile_name ec2_instance_type ec2_keypair
    ec2_keypair_file ec2_parameter_names ec2_secret_access_key ec2_security_groups ec2_security_ids
    ec2_spot_price ec2_tag_names ec2_user_data ec2_user_data_file ec2_vpc_ip ec2_vpc_subnet email_attributes
    encrypt_execute_directory encrypt_input_files encrypt_output_files environment
    erase_output_and_error_on_restart error executable gce_account gce_auth_file gce_image gce_json_file
    gce_machine_type gce_metadata gce_metadata_file gce_preemptible getenv gpus_maximum_capability
    gpus_minimum_capability gpus_minimum_memory gpus_minimum_runtime grid_resource gs_access_key_id_file
    gs_secret_access_key_file hold hold_kill_sig image_size initialdir input jar_files java_vm_args
    job_ad_information_attrs job_lease_duration job_machine_attrs job_machine_attrs_history_length
    job_max_vacate_time keep_claim_idle kill_sig kill_sig_timeout leave_in_queue load_profile log log_xml
    machine_count manifest manifest_dir match_list_length max_idle max_job_retirement_time max_materialize
    max_retries max_transfer_input_mb max_transfer_output_mb mount_under_scratch next_job_start_delay
    nice_user noop_job noop_job_exit_code noop_job_exit_signal notification notify_user on_exit_hold
    on_exit_hold_reason on_exit_hold_subcode on_exit_remove output output_destination periodic_hold
    periodic_hold_reason periodic_hold_subcode periodic_release periodic_remove periodic_vacate
    preserve_relative_paths primary_unix_group priority public_input_files queue rank remote_initialdir
    remove_kill_sig rendezvousdir request_GPUs request_cpus request_disk request_gpus request_memory
    require_gpus requirements retry_until run_as_owner s3_access_key_id_file s3_secret_access_key_file
    scitokens_file shell should_transfer_files skip_filechecks skip_if_dataflow stack_size starter_debug
    starter_log stream_error stream_input stream_output submit_event_notes success_exit_code
    transfer_checkpoint_files transfer_container transfer_error transfer_executable transfer_input
    transfer_input_files transfer_output transfer_output_files transfer_output_remaps transfer_plugins
    ulog_execute_attrs universe use_oauth_services use_scitokens use_x509userproxy vm_checkpoint vm_disk
    vm_macaddr vm_memory vm_networking vm_networking_type vm_no_output_vm vm_type want_graceful_removal
    want_job_networking when_to_transfer_output x509userproxy xen_initrd xen_kernel xen_kernel_params
    xen_root
""".split())

_PATTERNS = [re.compile(p, re.IGNORECASE) for p in (
    r"request_[A-Za-z0-9_]+",  # request_<name>: any custom machine resource
    r"[A-Za-z0-9_-]+_oauth_(permissions|resource)(_[A-Za-z0-9_]+)?",  # <credential_service_name>_oauth_*[_<handle>]
    r"[A-Za-z0-9_-]+_(HostPort|container_port)",  # <service-name>_HostPort, <service-name>_container_port
    r"(cloud_label|ec2_parameter|ec2_tag)_[A-Za-z0-9_]+",  # cloud_label_<name>, ec2_parameter_<name>, ec2_tag_<name>
)]
"""The documented commands with a placeholder in their name: <credential_service_name>_oauth_permissions,
<credential_service_name>_oauth_resource, <service-name>_HostPort, <service-name>_container_port, cloud_label_<name>,
ec2_parameter_<name>, ec2_tag_<name>, request_<name>."""

_ATTRIBUTE = re.compile(r"^(\+|MY\.)[A-Za-z_][A-Za-z0-9_.]*$", re.IGNORECASE)


def is_job_attribute(key: str) -> bool:
    """`+Name` or `MY.Name`: a job ClassAd attribute set directly (any name is valid)."""
    return bool(_ATTRIBUTE.match(key))


def is_documented_command(key: str) -> bool:
    """Whether `key` is a documented submit command or a job attribute."""
    return is_job_attribute(key) or key.lower() in DOCUMENTED_COMMANDS or any(p.fullmatch(key) for p in _PATTERNS)
