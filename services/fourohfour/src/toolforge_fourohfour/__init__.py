"""fourohfour: the page a web request gets when no tool serves its host and path."""
