"""Running conversions: one page's way, the retry ladder, the cache, raw answers, the scheduler, Ray, the report."""
