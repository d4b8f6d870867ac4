"""Run `rs-ssl pretrain` and SIGKILL this very process at the end of optimiser step K (test helper).

Usage: python tests/_pretrain_kill_at.py K <pretrain args...>. K < 0 runs to completion.
"""

import os
import signal
import sys

import lightning.pytorch as pl

kill_at = int(sys.argv[1])
_orig_init = pl.Trainer.__init__


def _init(self, *args, callbacks=None, **kwargs):
    class Killer(pl.Callback):
        def on_train_batch_end(self, trainer, *a):
            if trainer.global_step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    _orig_init(self, *args, callbacks=[*(callbacks or []), Killer()], **kwargs)


pl.Trainer.__init__ = _init

from rs_ssl.cli import main  # noqa: E402

raise SystemExit(main(sys.argv[2:]))
