"""Rows in, features out: GLUE sources, the tokenisation cache, content digests, and the
distillation transfer sets. No torch.

sources     GLUE sources: a GLUE directory, a hub dataset; one split as rows
features    the tokenisation cache: content-keyed, atomic, shared by every trial
digest      content digests of data files, memoised by path, size, mtime, inode, ctime
transfer    Pre-trained Distillation settings (the ``distill`` block resolved), extra transfer
            files, the soft-label cache (content-keyed, atomic)
"""
