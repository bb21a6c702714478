"""The cluster settings of one pipeline task, from the config's ``kfp`` section at compile time.

Resources, retries, image, caching, the S3 secret as env, pod labels, node selectors and tolerations end up in the
compiled YAML (the PipelineSpec and its Kubernetes platform spec). The service account is not here: KFP v2 sets it
per run (``medopt pipeline submit --service-account``), and kfp-kubernetes 2.17 has no per-task setting for it.
"""

from kfp import kubernetes
from kfp.dsl import PipelineTask

from medopt.config import KfpConfig
from medopt.pipeline.kfp_entry import CLUSTER_ENV
from medopt.pipeline.step_list import Step

S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
"""Keys of the S3 secret, exposed under the same names (what ``medopt.store.s3`` and MinIO read)."""
RETRY_BACKOFF = "30s"
RUN_AS_USER = 10001  # the uid of the medopt images (Dockerfile, Dockerfile.cuda)


def configure_task(task: PipelineTask, step: Step, kfp: KfpConfig) -> PipelineTask:
    """Apply ``kfp``'s settings for ``step`` to its task; a GPU (and the CUDA image) only when the step asks for one."""
    res = kfp.resources.for_step(step.name)
    gpu = res.accelerator_count > 0
    task.set_container_image(kfp.gpu_image if gpu else kfp.image)
    task.set_cpu_request(res.cpu_request).set_cpu_limit(res.cpu_limit)
    task.set_memory_request(res.memory_request).set_memory_limit(res.memory_limit)
    if gpu:
        task.set_accelerator_type(res.accelerator_type).set_accelerator_limit(res.accelerator_count)
    if res.retries:
        task.set_retry(res.retries, backoff_duration=RETRY_BACKOFF, backoff_factor=2.0)
    # A per-run step takes the KFP run's id as an input, so a cache lookup could never hit: say so in the spec.
    task.set_caching_options(enable_caching=kfp.caching and not step.per_run)
    task.set_env_variable(CLUSTER_ENV, "1")
    kubernetes.use_secret_as_env(task, secret_name=kfp.s3_secret, secret_key_to_env={k: k for k in S3_KEYS})
    # Pod Security "restricted" where the namespace enforces it (multi-user KFP in medopt): the images' non-root
    # user; KFP's backend adds allowPrivilegeEscalation=false, drop ALL and seccomp RuntimeDefault itself.
    kubernetes.set_security_context(task, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_USER, run_as_non_root=True)
    for key, value in kfp.pod_labels.items():
        kubernetes.add_pod_label(task, key, value)
    for key, value in res.node_selector.items():
        kubernetes.add_node_selector(task, key, value)
    for t in res.tolerations:
        kubernetes.add_toleration(task, key=t.key, operator=t.operator, value=t.value, effect=t.effect,
                                  toleration_seconds=t.toleration_seconds)
    return task
