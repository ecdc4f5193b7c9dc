"""Datasets out of a project: COCO JSON (the stored compressed RLE as it is, or polygons) and mask
PNGs (semantic and instance), optionally zipped with the images; its videos as YouTube-VIS or
COCO-video JSON or DAVIS palette PNGs, optionally zipped with the frames.

One export code path (``export.dataset_export_run``) serves the background job
(``export_job``, kind ``export_dataset``), ``manage.py export_dataset``, the project page's form and
the REST endpoint. Exports are streamed: items and their annotations are read in chunks and written
entry by entry, so memory stays flat however large the project.

- ``options``: what an export may be asked for, checked in one place;
- ``selectors``: the reads (items, annotations, labels, questions of one project);
- ``naming``: safe, unique file names for the items;
- ``coco_export``: COCO entries and the streaming COCO writer, polygons from masks;
- ``mask_export``: semantic and instance PNGs and their index;
- ``export``: one export run, to a ``.json`` or ``.zip`` file;
- ``video_tracks``: a video's annotations as tracks (label, answers, centroids per frame);
- ``video_export``: the video formats' run (``youtube_vis`` and ``davis_png`` write the files);
- ``export_job``: starting it as a job, and the job's runner.

Datasets in (``import_dataset`` and ``merge_datasets`` jobs, commands, project page, REST):

- ``coco_reading``: parsing and checking a COCO file, refusing a malformed one whole;
- ``coco_import``: one import run (a COCO file onto items by name, or a zip creating the items);
- ``youtube_vis_import``: a YouTube-VIS file's tracks onto the project's videos by name;
- ``import_mapping``: what both imports share: options, categories to labels, attributes to answers;
- ``import_job``: keeping the upload, starting the import job, and its runner;
- ``merge``: copying other projects' items, annotations and answers in, labels mapped;
- ``splits``: saved, stratified train / val / test splits that exports can take.

Figures (the statistics page, ``dataset_stats``): ``statistics``; ``evaluation`` (images: IoU, Dice,
COCOeval AP) and ``video_scores`` (videos: J and F per object, on ``video_evaluation``), both over
the sets of ``evaluation_sets``; ``tables`` renders them.
"""
