"""The brand's help articles: imported from files, found for each mention, offered to the model.

``sources`` reads a folder of Markdown, HTML or text files, a CSV of URLs and titles, or a
``sitemap.xml`` into articles; ``store`` keeps them in the database (``articles``, split
into ``article_chunks``), updating changed ones and removing gone ones; ``retrieval`` finds
the few that best match a mention, with the same similarity machinery as approved examples
(``bot.similarity``); ``grounding`` decides which go into the prompt, which the draft may
link, and keeps them on the conversation for the card.
"""
