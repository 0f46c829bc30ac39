"""Running conversions: one page's way (pages.py), the retry ladder, the cache, raw answers, the scheduler, Ray, the report."""
