"""Commercial terms: the price list, quotes, billing periods and proration."""
