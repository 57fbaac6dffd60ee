"""Zero-downtime rotation of the root and the signing intermediate (current/next slots).

* :mod:`.slots` reads which stored authority is current, next (prepared) or draining;
* :mod:`.steps` runs prepare / activate / retire / rollback, each audited, under the
  ``ca-rotation`` store lock;
* :mod:`.schedule` runs those steps automatically when the pure thresholds of
  :mod:`citadel.ca.rotation_schedule` say they are due;
* :mod:`.status` describes the slots for operators; :mod:`.acks` counts agents that have
  the new trust bundle.
"""

from __future__ import annotations
