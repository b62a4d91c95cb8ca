"""`python -m difflab` with a bug injected into rank 1's training batches (never into the
library): the test that shows a 2-process comparison catches a wrong batch or noise runs it.

DIFFLAB_TEST_PERTURB=noise: rank 1 draws the noise and t of rank 0's rows (its row offset
ignored); =order: rank 1's images come in reverse order, each paired with another row's noise,
t and label; =none: no change, so the launcher itself is shown not to matter.
"""

import dataclasses
import os

from difflab.cli.main import main
from difflab.parallel.distributed import rank
from difflab.training import step

PERTURBATIONS = {
    "noise": lambda batch: dataclasses.replace(batch, offset=0),
    "order": lambda batch: dataclasses.replace(batch, x0=batch.x0.flip(0)),
    "none": lambda batch: batch,
}
unperturbed = step.micro_batch_loss


def micro_batch_loss(state, batch, *args, **kwargs):
    """step.micro_batch_loss of rank 1's batch perturbed."""
    if rank() == 1:
        batch = PERTURBATIONS[os.environ["DIFFLAB_TEST_PERTURB"]](batch)
    return unperturbed(state, batch, *args, **kwargs)


step.micro_batch_loss = micro_batch_loss
raise SystemExit(main())
