"""``python -m tams_analytics.views --write DIR``: (re)generate the Trino view files
(:func:`tams_analytics.trino_views.main`)."""

import sys

from tams_analytics.trino_views import main

sys.exit(main())
